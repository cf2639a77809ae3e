package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/spc"
)

// fixed answers every fetch with its objects or its error.
type fixed struct {
	objs []Object
	err  error
}

func (fixed) Name() string { return "fake" }
func (f fixed) Fetch(context.Context, Request) ([]Object, error) {
	return f.objs, f.err
}

func sized(id string, sizes ...int) Object {
	o := Object{ID: id, Version: "v1"}
	for i, n := range sizes {
		o.Files = append(o.Files, atomicdir.File{Path: fmt.Sprintf("%s-%d", id, i), Data: bytes.Repeat([]byte("S"), n)})
	}
	return o
}

// TestFetchMergedSizes: the caps apply per object (all its files) and per
// volume, in the one step the agent, the shim and the sync controller
// share, as InvalidContent errors that name the class, the object and the
// limit and quote no content.
func TestFetchMergedSizes(t *testing.T) {
	class := &spc.Class{Namespace: "tenant", Name: "big", Provider: "fake"}
	sizes := limits.Sizes{ObjectBytes: 100, VolumeBytes: 250}
	cases := map[string]struct {
		p      fixed
		object string // named in the error; "" for the volume
		want   string
	}{
		"under the caps":         {p: fixed{objs: []Object{sized("a", 50, 50), sized("b", 100), sized("c", 50)}}},
		"one file over":          {p: fixed{objs: []Object{sized("a", 10), sized("huge", 101)}}, object: "huge", want: "101 bytes, more than the limit of 100 bytes"},
		"an object's files over": {p: fixed{objs: []Object{sized("split", 60, 60)}}, object: "split", want: "120 bytes, more than the limit of 100 bytes"},
		"the volume over":        {p: fixed{objs: []Object{sized("a", 100), sized("b", 100), sized("c", 51)}}, want: "251 bytes, more than the limit of 250 bytes"},
		"a transport's cap": {p: fixed{err: fmt.Errorf("GetSecretValue: deserialization failed: %w", &limits.TooLargeError{What: "the response of POST secretsmanager", Limit: 4096})},
			want: "the response of POST secretsmanager is larger than the limit of 4096 bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, files, err := FetchMerged(context.Background(), tc.p, Request{Class: class, Sizes: sizes}, nil)
			if tc.want == "" {
				if err != nil || len(files) != 4 {
					t.Fatalf("files %d, err %v", len(files), err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != ReasonInvalidContent || pe.Object != tc.object || pe.Class != "tenant/big" || !errors.Is(err, limits.ErrTooLarge) {
				t.Fatalf("err %#v, want InvalidContent for object %q of tenant/big", err, tc.object)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "SSS") {
				t.Fatalf("err %q, want %q and no content", err, tc.want)
			}
		})
	}
	// The zero Sizes are the defaults: 1 MiB per object.
	_, _, err := FetchMerged(context.Background(), fixed{objs: []Object{sized("mib", 1<<20+1)}}, Request{Class: class}, nil)
	if !errors.Is(err, limits.ErrTooLarge) {
		t.Fatalf("an object of 1 MiB + 1 byte under the default caps: %v", err)
	}
}
