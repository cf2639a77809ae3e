// Package volume is one secrets volume: a parsed class, the directory its
// files are published in, and the objects last written there. Refresh is
// the single fetch-and-write step shared by the in-pod agent and the node
// CSI shim, so both fetch version-aware and publish atomically the same way.
package volume

import (
	"context"
	"fmt"
	"io/fs"
	"sync"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// Volume is safe for use by one refresher at a time; Objects may be read
// concurrently.
type Volume struct {
	Class *spc.Class
	// Dir is where files are published.
	Dir string
	// Permission is the mode of files whose object sets none; zero means
	// atomicdir.DefaultMode.
	Permission fs.FileMode
	// Sizes caps each object and the whole volume; the zero value means
	// the defaults (limits.DefaultObjectBytes, limits.DefaultVolumeBytes).
	Sizes limits.Sizes
	// Templates are the class's compiled templates (render.Annotation),
	// rendered into the same atomic write as the objects; nil renders
	// nothing.
	Templates *render.Set

	mu      sync.Mutex
	objects []provider.Object
	// rendered is the last published render, so that a template whose
	// objects did not change is not executed again.
	rendered *render.Result
}

// Result says what one Refresh did.
type Result struct {
	// Objects are the object versions now published.
	Objects []provider.Object
	// Write is what the atomic write changed.
	Write atomicdir.Result
	// Rendered lists the template paths executed by this Refresh (the
	// others kept the file rendered before, none of their objects having
	// changed); nil without templates.
	Rendered []string
}

// Refresh fetches the class's objects with p, passing the versions already
// written so that unchanged objects cost no content fetch, and publishes
// the complete set atomically, with the files its Templates render from
// exactly these objects (a template that fails to execute fails the
// Refresh, naming the template and position but no value). On any error
// nothing published changes.
func (v *Volume) Refresh(ctx context.Context, p provider.Provider, id identity.Identity) (Result, error) {
	v.mu.Lock()
	prev, prior := v.objects, v.rendered
	v.mu.Unlock()

	perm := v.Permission
	if perm == 0 {
		perm = atomicdir.DefaultMode
	}
	merged, files, err := provider.FetchMerged(ctx, p, provider.Request{Class: v.Class, Identity: id, Permission: perm, Sizes: v.Sizes}, prev)
	if err != nil {
		return Result{}, err
	}
	for i := range files {
		if files[i].Mode == 0 && !files[i].ExactMode {
			files[i].Mode = perm
		}
	}
	var res *render.Result
	if v.Templates != nil {
		objs := make(map[string][]byte, len(files))
		for _, f := range files {
			objs[f.Path] = f.Data
		}
		if res, err = v.Templates.Render(objs, prior); err != nil {
			return Result{}, fmt.Errorf("render templates of SecretProviderClass %s: %w", v.Class.Key(), err)
		}
		files = res.Payload(files, perm)
		// The objects passed the volume cap alone; with the rendered
		// files the volume must still fit it (the shim's tmpfs is sized
		// from it).
		var total int64
		for _, f := range files {
			total += int64(len(f.Data))
		}
		if total > v.Sizes.Volume() {
			return Result{}, &provider.Error{Class: v.Class.Key(), Provider: v.Class.Provider, Reason: provider.ReasonInvalidContent,
				Err: &limits.TooLargeError{What: fmt.Sprintf("the content of all %d published files (rendered templates included)", len(files)), Size: total, Limit: v.Sizes.Volume()}}
		}
	}
	wr, err := atomicdir.Write(v.Dir, files)
	if err != nil && !wr.Swapped {
		return Result{}, fmt.Errorf("write files of SecretProviderClass %s to %s: %w", v.Class.Key(), v.Dir, err)
	}
	v.mu.Lock()
	v.objects, v.rendered = merged, res
	v.mu.Unlock()
	// An error after the swap (a name not fixed up) is reported, but the
	// new set is published and recorded.
	out := Result{Objects: merged, Write: wr}
	if res != nil {
		out.Rendered = res.Rendered
	}
	return out, err
}

// Objects returns the objects last published.
func (v *Volume) Objects() []provider.Object {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.objects
}

// Forget drops the recorded objects (and the last render) so the next
// Refresh fetches all content and renders every template.
func (v *Volume) Forget() {
	v.mu.Lock()
	v.objects, v.rendered = nil, nil
	v.mu.Unlock()
}
