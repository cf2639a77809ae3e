package provider

import (
	"context"
	"testing"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/spc"
)

func file(path, data string) atomicdir.File {
	return atomicdir.File{Path: path, Data: []byte(data)}
}

// TestLastWriterWins: of files sharing a path only the last is kept, the
// order of the others stays, and a list without duplicates is returned
// as it is.
func TestLastWriterWins(t *testing.T) {
	tests := map[string]struct {
		in   []atomicdir.File
		want []string // path=data
	}{
		"no duplicates":    {[]atomicdir.File{file("b", "1"), file("a", "2")}, []string{"b=1", "a=2"}},
		"two, later wins":  {[]atomicdir.File{file("a", "first"), file("a", "second")}, []string{"a=second"}},
		"three, last wins": {[]atomicdir.File{file("a", "1"), file("b", "x"), file("a", "2"), file("a", "3")}, []string{"b=x", "a=3"}},
		"empty":            {nil, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := LastWriterWins(tc.in)
			var s []string
			for _, f := range got {
				s = append(s, f.Path+"="+string(f.Data))
			}
			if len(s) != len(tc.want) {
				t.Fatalf("got %v, want %v", s, tc.want)
			}
			for i := range s {
				if s[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", s, tc.want)
				}
			}
			if err := atomicdir.ValidatePayload(got); err != nil {
				t.Fatalf("result is not a valid payload: %v", err)
			}
		})
	}
}

// TestFetchMergedDuplicatePath: two objects writing one path (an Azure
// secret and key of the same name, say) give one file, the later object's
// with its mode, on the first fetch and on a rotation where the earlier
// object is unchanged and the later one is not; both objects stay in the
// merged result for their versions.
func TestFetchMergedDuplicatePath(t *testing.T) {
	class := &spc.Class{Namespace: "ns", Name: "cls", Provider: "fake"}
	first := []Object{
		{ID: "secret/x", Version: "s1", Files: []atomicdir.File{{Path: "x", Data: []byte("secret-1"), Mode: 0o600}}},
		{ID: "key/x", Version: "k1", Files: []atomicdir.File{{Path: "x", Data: []byte("key-1"), Mode: 0o640}}},
	}
	merged, files, err := FetchMerged(context.Background(), fixed{objs: first}, Request{Class: class}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != 2 || len(files) != 1 || string(files[0].Data) != "key-1" || files[0].Mode != 0o640 {
		t.Fatalf("merged %d objects, files %+v; want 2 objects and x=key-1 mode 0640", len(merged), files)
	}
	second := []Object{
		{ID: "secret/x", Version: "s1", Unchanged: true},
		{ID: "key/x", Version: "k2", Files: []atomicdir.File{{Path: "x", Data: []byte("key-2"), Mode: 0o640}}},
	}
	_, files, err = FetchMerged(context.Background(), fixed{objs: second}, Request{Class: class}, merged)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || string(files[0].Data) != "key-2" {
		t.Fatalf("files after rotation %+v; want x=key-2", files)
	}
	// The order of the objects decides, not the content: reversed, the
	// secret wins.
	rev := []Object{first[1], first[0]}
	_, files, err = FetchMerged(context.Background(), fixed{objs: rev}, Request{Class: class}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || string(files[0].Data) != "secret-1" {
		t.Fatalf("reversed files %+v; want x=secret-1", files)
	}
}
