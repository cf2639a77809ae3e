package provider

import (
	"errors"
	"slices"

	"github.com/ssinjector/ssi/internal/atomicdir"
)

// Errors are the per-object failures of one fetch, in class order. A
// provider returns them together with every object it did fetch, so that
// FetchMerged can drop optional objects the backend does not have
// (spc.AnnotationOptionalObjects) and serve the rest. Its message is the
// first failure's, exactly as a provider that stops at the first failing
// object reports it; errors.As finds that first *Error.
type Errors []*Error

func (es Errors) Error() string {
	if len(es) == 0 {
		return "no failure"
	}
	return es[0].Error()
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Partial is what a provider's Fetch returns for per-object results: the
// objects and nil when none failed, else the objects that did not fail and
// the failures (Errors). Every object whose failure is ReasonNotFound must
// leave the others fetched; after any other failure a provider may stop
// (the fetch fails anyway), and for a failure of the class as a whole, such
// as its identity, it returns a plain *Error and no objects.
func Partial(objs []Object, errs []*Error) ([]Object, error) {
	if len(errs) == 0 {
		return objs, nil
	}
	return objs, Errors(errs)
}

// dropMissing separates, from the failures of a fetch, the optional
// objects the backend does not have: it returns their IDs, sorted, and
// the error of the other failures (nil when there are none, then objs is
// the fetch's result). Only Errors carry a usable partial result; any
// other error is returned as it is.
func dropMissing(req Request, objs []Object, err error) (missing []string, rest error) {
	var es Errors
	if !errors.As(err, &es) || req.Class == nil || len(req.Class.Optional) == 0 {
		return nil, err
	}
	var other Errors
	seen := map[string]bool{}
	for _, e := range es {
		if e.Reason == ReasonNotFound && req.Class.IsOptional(e.Object) {
			if !seen[e.Object] {
				seen[e.Object] = true
				missing = append(missing, e.Object)
			}
			continue
		}
		other = append(other, e)
	}
	if len(other) > 0 {
		return nil, other
	}
	slices.Sort(missing)
	return missing, nil
}

// keepMissing returns, for class's optional objects in missing, the
// objects of prev they yielded (marked Missing), when the class keeps the
// last files of a missing optional object (spc.AnnotationOptionalOnDelete:
// keep); nil when it removes them. A last file never stands over what
// this fetch got: an object whose ID or any of whose paths fetched (an
// object of this fetch, its files or, when Unchanged, its previous ones)
// holds is not kept, so a fresh file is served, not a stale one.
func keepMissing(req Request, prev []Object, missing []string, fetched []Object) []Object {
	if !req.Class.KeepMissing || len(missing) == 0 {
		return nil
	}
	prevByID := make(map[string]*Object, len(prev))
	for i := range prev {
		prevByID[prev[i].ID] = &prev[i]
	}
	taken := map[string]bool{}
	paths := map[string]bool{}
	for _, o := range fetched {
		taken[o.ID] = true
		files := o.Files
		if p := prevByID[o.ID]; o.Unchanged && p != nil {
			files = p.Files
		}
		for _, f := range files {
			paths[f.Path] = true
		}
	}
	want := map[string]bool{}
	for _, id := range missing {
		for _, oid := range req.Class.Optional[id] {
			want[oid] = !taken[oid]
		}
	}
	var out []Object
	for _, o := range prev {
		if !want[o.ID] || slices.ContainsFunc(o.Files, func(f atomicdir.File) bool { return paths[f.Path] }) {
			continue
		}
		o.Missing, o.Unchanged = true, false
		out = append(out, o)
	}
	return out
}

// MissingOptional returns the IDs of the class's optional objects that
// objs (a merged result) lacks or holds only as kept last files, sorted.
func MissingOptional(optional map[string][]string, objs []Object) []string {
	present := map[string]bool{}
	for _, o := range objs {
		if !o.Missing {
			present[o.ID] = true
		}
	}
	var out []string
	for id, ids := range optional {
		if !slices.ContainsFunc(ids, func(s string) bool { return present[s] }) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
