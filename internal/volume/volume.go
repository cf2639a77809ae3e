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

	mu      sync.Mutex
	objects []provider.Object
}

// Result says what one Refresh did.
type Result struct {
	// Objects are the object versions now published.
	Objects []provider.Object
	// Write is what the atomic write changed.
	Write atomicdir.Result
}

// Refresh fetches the class's objects with p, passing the versions already
// written so that unchanged objects cost no content fetch, and publishes
// the complete set atomically. On any error nothing published changes.
func (v *Volume) Refresh(ctx context.Context, p provider.Provider, id identity.Identity) (Result, error) {
	v.mu.Lock()
	prev := v.objects
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
		if files[i].Mode == 0 {
			files[i].Mode = perm
		}
	}
	wr, err := atomicdir.Write(v.Dir, files)
	if err != nil && !wr.Swapped {
		return Result{}, fmt.Errorf("write files of SecretProviderClass %s to %s: %w", v.Class.Key(), v.Dir, err)
	}
	v.mu.Lock()
	v.objects = merged
	v.mu.Unlock()
	// An error after the swap (a name not fixed up) is reported, but the
	// new set is published and recorded.
	return Result{Objects: merged, Write: wr}, err
}

// Objects returns the objects last published.
func (v *Volume) Objects() []provider.Object {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.objects
}

// Forget drops the recorded objects so the next Refresh fetches all content.
func (v *Volume) Forget() {
	v.mu.Lock()
	v.objects = nil
	v.mu.Unlock()
}
