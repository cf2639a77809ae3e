// Package provider defines what a secrets backend implements: fetch the
// objects of a class for an identity, given the versions already written.
// Backends live in sub-packages and are registered explicitly by the mains.
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/spc"
)

// Request is one fetch of all objects of a class.
type Request struct {
	// Class is the parsed SecretProviderClass.
	Class *spc.Class
	// Identity is who the fetch runs as.
	Identity identity.Identity
	// Current maps object IDs to the versions already written; a provider
	// may answer Unchanged for an object whose version it finds equal,
	// without fetching its content.
	Current map[string]string
	// Permission is the mode of files whose object sets none.
	Permission fs.FileMode
	// Sizes caps each object's files and all files of the fetch; the zero
	// value means the defaults. FetchMerged enforces them.
	Sizes limits.Sizes
	// Secrets are the keys of the volume's nodePublishSecretRef Secret, as
	// kubelet hands them to a CSI driver (the node shim) or as the agent
	// reads them from the Secret volume mounted into it; nil when the
	// volume names none. Providers read the credentials there that
	// Identity.Cloud.Credentials selects, and never log them.
	Secrets map[string]string
	// Keep lists object IDs whose previous answer stands (a certificate
	// before its renewal point). A provider that implements Keeper answers
	// Unchanged for them without calling the backend; the caller sets Keep
	// only for such providers, and only for whole groups (Object.Group).
	Keep map[string]bool
}

// Kept reports whether the previous answer for the objects ids stands:
// every one is in Keep and has a version in Current, so the provider can
// answer Unchanged for them without calling the backend.
func (r Request) Kept(ids ...string) bool {
	if len(r.Keep) == 0 || len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		if _, known := r.Current[id]; !known || !r.Keep[id] {
			return false
		}
	}
	return true
}

// Keeper is implemented by providers that honour Request.Keep.
type Keeper interface {
	// HonoursKeep reports that Fetch never calls the backend for the
	// objects of Request.Keep.
	HonoursKeep() bool
}

// HonoursKeep reports whether p implements Keeper and honours Keep.
func HonoursKeep(p Provider) bool {
	k, ok := p.(Keeper)
	return ok && k.HonoursKeep()
}

// Object is the result for one object of the class.
type Object struct {
	// ID is stable for the object within its class and appears in
	// SecretProviderClassPodStatus objects[].id.
	ID string
	// Version identifies the content; it changes when the content does.
	Version string
	// Files are the files of the object. Nil when Unchanged.
	Files []atomicdir.File
	// Unchanged reports that Version equals Request.Current[ID] and the
	// previously written files stand.
	Unchanged bool
	// Group is shared by the objects cut from one backend response (a
	// Vault PKI issue's certificate, key and chain), which are renewed
	// together; empty means the object is a group of its own.
	Group string
	// Expires is when the object's lease ends, for a provider that knows
	// (a Vault dynamic secret); zero when unknown.
	Expires time.Time
	// Missing marks the last files of an optional object the backend no
	// longer has, kept because the class says so
	// (spc.AnnotationOptionalOnDelete: keep). Set by FetchMerged only.
	Missing bool
}

// Provider fetches the objects of a class from one backend.
type Provider interface {
	// Name is the spec.provider value served, e.g. "vault".
	Name() string
	// Fetch returns every object of the class, or an error naming the
	// object and cause. It never returns a partial set without an error;
	// with Errors (see Partial) the objects returned are all the others.
	Fetch(ctx context.Context, req Request) ([]Object, error)
}

// Set is the providers available to a process, by name.
type Set map[string]Provider

// NewSet registers the given providers by their names.
func NewSet(ps ...Provider) Set {
	s := Set{}
	for _, p := range ps {
		s[p.Name()] = p
	}
	return s
}

// Get returns the provider for name, or an error that names the class.
func (s Set) Get(name string) (Provider, error) {
	p, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("provider %q is not available here", name)
	}
	return p, nil
}

// Names returns the names of the set's providers, sorted.
func (s Set) Names() []string { return slices.Sorted(maps.Keys(s)) }

// Close closes the providers that keep connections or background work
// (those that are io.Closers), and returns their errors, each naming its
// provider.
func (s Set) Close() error {
	var errs []error
	for _, name := range s.Names() {
		if c, ok := s[name].(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close provider %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// FetchMerged fetches req's class with p, passing the versions of prev (the
// objects of the last successful fetch) as req.Current so that unchanged
// objects cost no content fetch, and merges the result into prev: the
// complete objects and files, as Merge returns them. An empty result is an
// error, except for a built-in class whose object list is explicitly empty
// (objects: "[]"), whose volume stays empty.
//
// It is the one place optional objects (spc.Class.Optional) are handled:
// an optional object that the provider reports not found (ReasonNotFound
// in Errors) is left out, so its files are absent, or, when the class
// keeps missing objects' files (spc.Class.KeepMissing), its objects of
// prev stand, marked Missing. Any other failure of an optional object,
// and any failure of a required one, fails the fetch as before.
func FetchMerged(ctx context.Context, p Provider, req Request, prev []Object) ([]Object, []atomicdir.File, error) {
	req.Current = Versions(prev)
	for _, o := range prev {
		if o.Missing {
			// Kept files of an object that was gone: a re-created object
			// may reuse the old version ID (an SSM parameter starts at 1
			// again), so its content is read, not assumed unchanged.
			delete(req.Current, o.ID)
		}
	}
	objs, err := p.Fetch(ctx, req)
	var missing []string
	if err != nil {
		missing, err = dropMissing(req, objs, err)
	}
	if err != nil {
		return nil, nil, tooLargeIsContent(req, err)
	}
	fail := func(reason Reason, err error) error {
		return &Error{Class: req.Class.Key(), Provider: req.Class.Provider, Reason: reason, Err: err}
	}
	objs = append(objs, keepMissing(req, prev, missing, objs)...)
	if len(objs) == 0 && len(missing) == 0 && (!req.Class.BuiltIn() || len(req.Class.Files()) > 0) {
		return nil, nil, fail(ReasonInvalidContent, errors.New("the provider returned no objects"))
	}
	merged, files, err := Merge(prev, objs)
	if err != nil {
		return nil, nil, fail(ReasonUnknown, err)
	}
	if err := CheckSizes(merged, req.Sizes); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Class, pe.Provider = req.Class.Key(), req.Class.Provider
		}
		return nil, nil, err
	}
	return merged, files, nil
}

// tooLargeIsContent gives the failures that hit a transport's cap (under
// whatever the SDK made of it) ReasonInvalidContent: the content is the
// problem, not the backend's availability. Of per-object failures
// (Errors), only those whose own cause is the cap are relabelled.
func tooLargeIsContent(req Request, err error) error {
	if !errors.Is(err, limits.ErrTooLarge) {
		return err
	}
	var es Errors
	if errors.As(err, &es) {
		for _, e := range es {
			if errors.Is(e.Err, limits.ErrTooLarge) {
				e.Reason = ReasonInvalidContent
			}
		}
		return err
	}
	var pe *Error
	if errors.As(err, &pe) {
		pe.Reason = ReasonInvalidContent
		return err
	}
	return &Error{Class: req.Class.Key(), Provider: req.Class.Provider, Reason: ReasonInvalidContent, Err: err}
}

// CheckSizes enforces the per-object and per-volume caps of sizes on
// complete objects: the first object over its cap, or the set over the
// volume's, is an InvalidContent error naming the object (or the volume)
// and the limit, never content. This is the one place the agent, the node
// shim and the sync controller apply the caps to what they would write or
// sync; the transports' limits keep larger responses from being read at
// all.
func CheckSizes(objs []Object, sizes limits.Sizes) error {
	var total int64
	for _, o := range objs {
		var n int64
		for _, f := range o.Files {
			n += int64(len(f.Data))
		}
		if n > sizes.Object() {
			return &Error{Object: o.ID, Reason: ReasonInvalidContent, Err: &limits.TooLargeError{What: "the object's content", Size: n, Limit: sizes.Object()}}
		}
		total += n
	}
	if total > sizes.Volume() {
		return &Error{Reason: ReasonInvalidContent, Err: &limits.TooLargeError{What: fmt.Sprintf("the content of all %d objects", len(objs)), Size: total, Limit: sizes.Volume()}}
	}
	return nil
}

// Merge resolves Unchanged objects against the previous result and returns
// the complete files to write, sorted by path. Where two objects produce
// the same path, the later object's file is the one returned (see
// LastWriterWins).
func Merge(prev, cur []Object) ([]Object, []atomicdir.File, error) {
	byID := make(map[string]Object, len(prev))
	for _, o := range prev {
		byID[o.ID] = o
	}
	out := make([]Object, 0, len(cur))
	var files []atomicdir.File
	for _, o := range cur {
		if o.Unchanged {
			p, ok := byID[o.ID]
			if !ok {
				return nil, nil, fmt.Errorf("object %q reported unchanged but was never fetched", o.ID)
			}
			o.Files = p.Files
			if o.Group == "" {
				o.Group = p.Group
			}
			o.Unchanged = false
		}
		out = append(out, o)
		files = append(files, o.Files...)
	}
	files = LastWriterWins(files)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return out, files, nil
}

// LastWriterWins drops every file whose path a later file in files also
// has, keeping the order of the rest. The upstream driver writes a plugin's
// files into a map by path, so of two objects producing one file name the
// later one is served; admission warns about such classes (spc.Parse), and
// this is the one place the agent, the node shim and the sync controller
// resolve them, before atomicdir (which refuses duplicates) sees the list.
func LastWriterWins(files []atomicdir.File) []atomicdir.File {
	return atomicdir.LastByPath(files, func(f atomicdir.File) string { return f.Path })
}

// Versions returns the ID-to-version map of objects.
func Versions(objs []Object) map[string]string {
	m := make(map[string]string, len(objs))
	for _, o := range objs {
		m[o.ID] = o.Version
	}
	return m
}

// Reason classifies failures for metrics and events; it never carries data.
type Reason string

// Reasons shared by all providers.
const (
	ReasonNotFound        Reason = "NotFound"
	ReasonAccessDenied    Reason = "AccessDenied"
	ReasonThrottled       Reason = "Throttled"
	ReasonUnauthenticated Reason = "Unauthenticated"
	ReasonInvalidContent  Reason = "InvalidContent"
	ReasonInvalidConfig   Reason = "InvalidConfig"
	ReasonUnavailable     Reason = "Unavailable"
	ReasonUnknown         Reason = "Unknown"
)

// Error is a fetch failure for one object (or the whole class when Object
// is empty). Its message names the class, provider, object and cause; causes
// must never contain secret values.
type Error struct {
	Class    string // namespace/name
	Provider string
	Object   string
	Reason   Reason
	Err      error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("SecretProviderClass %s (provider %s)", e.Class, e.Provider)
	if e.Object != "" {
		where += fmt.Sprintf(", object %q", e.Object)
	}
	return fmt.Sprintf("%s: %s: %v", where, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of err, or ReasonUnknown.
func ReasonOf(err error) Reason {
	var pe *Error
	if errors.As(err, &pe) && pe.Reason != "" {
		return pe.Reason
	}
	return ReasonUnknown
}

// Waker is implemented by providers that learn between fetches that a fetch
// is due early, for example when a Vault lease can no longer be renewed.
// The agent fetches again when the channel receives.
type Waker interface {
	Wake() <-chan struct{}
}
