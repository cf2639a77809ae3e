package provider

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/spc"
)

// answerProvider answers each fetch with the next of its scripted results.
type answerProvider struct {
	answers []func(req Request) ([]Object, error)
	reqs    []Request
}

func (p *answerProvider) Name() string { return "vault" }

func (p *answerProvider) Fetch(_ context.Context, req Request) ([]Object, error) {
	p.reqs = append(p.reqs, req)
	a := p.answers[0]
	p.answers = p.answers[1:]
	return a(req)
}

func optionalClass(t *testing.T, onDelete string) *spc.Class {
	t.Helper()
	c, err := spc.ParseAnnotated("team", "cls", "vault", map[string]string{"roleName": "r", "vaultAddress": "https://vault:8200", "objects": `
- {objectName: db, secretPath: secret/data/db, secretKey: password}
- {objectName: maybe, secretPath: secret/data/maybe, secretKey: token}
`}, map[string]string{spc.AnnotationOptionalObjects: "maybe", spc.AnnotationOptionalOnDelete: onDelete})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func obj(id, version, data string) Object {
	return Object{ID: id, Version: version, Files: []atomicdir.File{{Path: id, Data: []byte(data)}}}
}

func objErr(c *spc.Class, id string, reason Reason, cause string) *Error {
	return &Error{Class: c.Key(), Provider: "vault", Object: id, Reason: reason, Err: errors.New(cause)}
}

func paths(files []atomicdir.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path+"="+string(f.Data))
	}
	return out
}

// The rules of FetchMerged for optional objects: only an optional object's
// NotFound in Errors is dropped (or kept with on-delete: keep); any other
// failure, of any object, fails the fetch with the first failure's message.
func TestFetchMergedOptional(t *testing.T) {
	for _, onDelete := range []string{"remove", "keep"} {
		t.Run(onDelete, func(t *testing.T) {
			c := optionalClass(t, onDelete)
			missing := func(req Request) ([]Object, error) {
				return Partial([]Object{{ID: "db", Version: "1", Unchanged: req.Current["db"] == "1", Files: fileIf(req.Current["db"] != "1", "db", "pw")}},
					[]*Error{objErr(c, "maybe", ReasonNotFound, "GET secret/data/maybe: 404")})
			}
			p := &answerProvider{answers: []func(Request) ([]Object, error){
				missing,
				func(Request) ([]Object, error) { return []Object{obj("db", "1", "pw"), obj("maybe", "1", "tok")}, nil },
				missing,
				missing,
				// maybe re-created at the same version: read again, not
				// taken from the kept files.
				func(req Request) ([]Object, error) {
					if _, ok := req.Current["maybe"]; ok {
						t.Errorf("Current holds the kept object's version: %v", req.Current)
					}
					return []Object{obj("db", "1", "pw"), obj("maybe", "1", "tok-new")}, nil
				},
			}}
			req := Request{Class: c}
			var prev []Object
			step := func(want ...string) {
				t.Helper()
				merged, files, err := FetchMerged(context.Background(), p, req, prev)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				if got := paths(files); !slices.Equal(got, want) {
					t.Fatalf("files %v, want %v", got, want)
				}
				prev = merged
			}
			step("db=pw")
			if got := MissingOptional(c.Optional, prev); !slices.Equal(got, []string{"maybe"}) {
				t.Errorf("MissingOptional = %v", got)
			}
			step("db=pw", "maybe=tok")
			if got := MissingOptional(c.Optional, prev); len(got) != 0 {
				t.Errorf("MissingOptional = %v after it appeared", got)
			}
			if onDelete == "keep" {
				step("db=pw", "maybe=tok")
				step("db=pw", "maybe=tok")
				if got := MissingOptional(c.Optional, prev); !slices.Equal(got, []string{"maybe"}) {
					t.Errorf("MissingOptional = %v with kept files", got)
				}
			} else {
				step("db=pw")
				step("db=pw")
			}
			step("db=pw", "maybe=tok-new")
		})
	}

	c := optionalClass(t, "")
	for name, tc := range map[string]struct {
		answer func(Request) ([]Object, error)
		want   string
		reason Reason
	}{
		"optional object denied": {
			answer: func(Request) ([]Object, error) {
				return Partial([]Object{obj("db", "1", "pw")}, []*Error{objErr(c, "maybe", ReasonAccessDenied, "403 permission denied")})
			},
			want: `SecretProviderClass team/cls (provider vault), object "maybe": AccessDenied: 403 permission denied`, reason: ReasonAccessDenied,
		},
		"required object missing, optional too": {
			answer: func(Request) ([]Object, error) {
				return Partial(nil, []*Error{objErr(c, "db", ReasonNotFound, "GET secret/data/db: 404"), objErr(c, "maybe", ReasonNotFound, "GET secret/data/maybe: 404")})
			},
			want: `SecretProviderClass team/cls (provider vault), object "db": NotFound: GET secret/data/db: 404`, reason: ReasonNotFound,
		},
		"optional missing, then a required failure": {
			answer: func(Request) ([]Object, error) {
				return Partial(nil, []*Error{objErr(c, "maybe", ReasonNotFound, "404"), objErr(c, "db", ReasonUnavailable, "connection refused")})
			},
			want: `SecretProviderClass team/cls (provider vault), object "db": Unavailable: connection refused`, reason: ReasonUnavailable,
		},
		// A plain *Error carries no partial result: nothing is dropped.
		"not found outside Errors": {
			answer: func(Request) ([]Object, error) { return nil, objErr(c, "maybe", ReasonNotFound, "404") },
			want:   `object "maybe": NotFound: 404`, reason: ReasonNotFound,
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := &answerProvider{answers: []func(Request) ([]Object, error){tc.answer}}
			_, _, err := FetchMerged(context.Background(), p, Request{Class: c}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ReasonOf(err) != tc.reason {
				t.Fatalf("error %v (reason %s), want %q (%s)", err, ReasonOf(err), tc.want, tc.reason)
			}
		})
	}

	// Every object optional and missing: an empty volume, not an error.
	all, err := spc.ParseAnnotated("team", "cls", "vault", map[string]string{"roleName": "r", "vaultAddress": "https://vault:8200",
		"objects": "- {objectName: maybe, secretPath: secret/data/maybe, secretKey: token}\n"}, map[string]string{spc.AnnotationOptionalObjects: "maybe"})
	if err != nil {
		t.Fatal(err)
	}
	p := &answerProvider{answers: []func(Request) ([]Object, error){func(Request) ([]Object, error) {
		return Partial(nil, []*Error{objErr(all, "maybe", ReasonNotFound, "404")})
	}}}
	if _, files, err := FetchMerged(context.Background(), p, Request{Class: all}, nil); err != nil || len(files) != 0 {
		t.Errorf("all optional and missing: %d files, %v; want none and no error", len(files), err)
	}
}

func fileIf(ok bool, path, data string) []atomicdir.File {
	if !ok {
		return nil
	}
	return []atomicdir.File{{Path: path, Data: []byte(data)}}
}

// Errors reads as its first failure, so messages are those of a provider
// that stops at the first failing object, and errors.As finds it.
func TestErrorsMessage(t *testing.T) {
	c := optionalClass(t, "")
	err := error(Errors{objErr(c, "db", ReasonNotFound, "first"), objErr(c, "maybe", ReasonAccessDenied, "second")})
	if want := `SecretProviderClass team/cls (provider vault), object "db": NotFound: first`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Object != "db" || ReasonOf(err) != ReasonNotFound {
		t.Errorf("errors.As found %+v", pe)
	}
	if _, err := Partial([]Object{{ID: "db"}}, nil); err != nil {
		t.Errorf("Partial without failures: %v", err)
	}
}

// A kept last file never stands over a file this fetch got: with
// on-delete keep, a required object now writing the missing optional
// object's path is served, not the stale content.
func TestKeptFilesYieldToFreshOnes(t *testing.T) {
	c := optionalClass(t, "keep")
	p := &answerProvider{answers: []func(Request) ([]Object, error){
		func(Request) ([]Object, error) {
			return []Object{obj("db", "1", "pw"), obj("maybe", "1", "stale")}, nil
		},
		func(Request) ([]Object, error) {
			return Partial([]Object{{ID: "db", Version: "2", Files: []atomicdir.File{{Path: "db", Data: []byte("pw2")}, {Path: "maybe", Data: []byte("fresh")}}}},
				[]*Error{objErr(c, "maybe", ReasonNotFound, "404")})
		},
	}}
	merged, _, err := FetchMerged(context.Background(), p, Request{Class: c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, files, err := FetchMerged(context.Background(), p, Request{Class: c}, merged)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(files), []string{"db=pw2", "maybe=fresh"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
}

// Of several per-object failures, only the one over a size cap becomes
// InvalidContent; the first (reported) failure keeps its own reason.
func TestTooLargeRelabelsItsOwnObject(t *testing.T) {
	c := optionalClass(t, "")
	p := &answerProvider{answers: []func(Request) ([]Object, error){func(Request) ([]Object, error) {
		return Partial(nil, []*Error{objErr(c, "db", ReasonNotFound, "404"),
			{Class: c.Key(), Provider: c.Provider, Object: "maybe", Reason: ReasonUnavailable, Err: &limits.TooLargeError{What: "the response", Size: 2 << 20, Limit: 1 << 20}}})
	}}}
	_, _, err := FetchMerged(context.Background(), p, Request{Class: c}, nil)
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("error %v, want both failures", err)
	}
	if es[0].Reason != ReasonNotFound || es[1].Reason != ReasonInvalidContent {
		t.Fatalf("reasons %s, %s; want NotFound, InvalidContent", es[0].Reason, es[1].Reason)
	}
}
