// Package volume is one secrets volume: a parsed class, the directory its
// files are published in, and the objects last written there. Refresh is
// the single fetch-and-write step shared by the in-pod agent and the node
// CSI shim, so both fetch version-aware and publish atomically the same way.
package volume

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

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
	// Secrets returns the keys of the volume's nodePublishSecretRef
	// Secret, called at every Refresh so that a rotated Secret is used;
	// nil when the volume names none (provider.Request.Secrets).
	Secrets func() (map[string]string, error)
	// RenewAt is the fraction of a certificate's validity after which it
	// is fetched again (see Refresh): the pod's cert-renew-at. Outside
	// (0, 1) means the class's parameters.ssiCertRenewAt, else
	// DefaultRenewAt; the node shim, which has no pod annotation, leaves
	// it zero.
	RenewAt float64
	// Now reads the time for renewal decisions; nil is time.Now.
	Now func() time.Time
	// Log, when set, gets one line each time an optional object of the
	// class (spc.AnnotationOptionalObjects) goes missing or reappears,
	// naming the class and the object, never content; nil logs nothing.
	Log *slog.Logger

	mu sync.Mutex
	// renewals are the certificate and lease schedules of objects.
	renewals []Renewal
	objects  []provider.Object
	// rendered is the last published render, so that a template whose
	// objects did not change is not executed again.
	rendered *render.Result
	// missing are the optional objects absent at the last Refresh.
	missing []string
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
	// Missing lists the IDs of the class's optional objects that the
	// backend does not have, sorted: their files are absent (or, with
	// spc.Class.KeepMissing, the last ones kept), and so are the files of
	// templates that read them.
	Missing []string
}

// Refresh fetches the class's objects with p, passing the versions already
// written so that unchanged objects cost no content fetch, and publishes
// the complete set atomically, with the files its Templates render from
// exactly these objects (a template that fails to execute fails the
// Refresh, naming the template and position but no value). On any error
// nothing published changes.
//
// Objects whose content holds an X.509 certificate are renewed by its
// lifetime: until RenewAt of the leaf's validity, the objects of its group
// (provider.Object.Group) are passed as Request.Keep to a provider that
// honours it, which answers Unchanged without calling the backend; at the
// renewal point the whole group is fetched again. A failed renewal keeps
// the old files (the caller retries).
//
// An optional object the backend does not have fails nothing: its files
// are left out (provider.FetchMerged) and a template that reads one of
// them is not rendered; Result.Missing names such objects.
func (v *Volume) Refresh(ctx context.Context, p provider.Provider, id identity.Identity) (Result, error) {
	v.mu.Lock()
	prev, prior, rs, wasMissing := v.objects, v.rendered, v.renewals, v.missing
	v.mu.Unlock()
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	var kept map[string]bool
	if provider.HonoursKeep(p) {
		kept = keep(rs, now(), v.Class)
	}

	perm := v.Permission
	if perm == 0 {
		perm = atomicdir.DefaultMode
	}
	req := provider.Request{Class: v.Class, Identity: id, Permission: perm, Sizes: v.Sizes, Keep: kept}
	if v.Secrets != nil {
		sec, err := v.Secrets()
		if err != nil {
			return Result{}, &provider.Error{Class: v.Class.Key(), Provider: v.Class.Provider, Reason: provider.ReasonInvalidConfig, Err: err}
		}
		req.Secrets = sec
	}
	merged, files, err := provider.FetchMerged(ctx, p, req, prev)
	if err != nil {
		return Result{}, err
	}
	for i := range files {
		if files[i].Mode == 0 && !files[i].ExactMode {
			files[i].Mode = perm
		}
	}
	missing := provider.MissingOptional(v.Class.Optional, merged)
	var res *render.Result
	if v.Templates != nil {
		objs := make(map[string][]byte, len(files))
		for _, f := range files {
			objs[f.Path] = f.Data
		}
		if res, err = v.Templates.RenderWithout(objs, prior, v.Class.OptionalPaths()); err != nil {
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
	nrs := renewals(merged, v.renewAt())
	v.mu.Lock()
	v.objects, v.rendered, v.renewals, v.missing = merged, res, nrs, missing
	v.mu.Unlock()
	v.logMissing(wasMissing, missing)
	// An error after the swap (a name not fixed up) is reported, but the
	// new set is published and recorded.
	out := Result{Objects: merged, Write: wr, Missing: missing}
	if res != nil {
		out.Rendered = res.Rendered
	}
	return out, err
}

// logMissing logs the optional objects that went missing or reappeared
// between two Refreshes.
func (v *Volume) logMissing(was, now []string) {
	if v.Log == nil {
		return
	}
	for _, id := range now {
		if !slices.Contains(was, id) {
			v.Log.Info("optional object not found; its files are absent until it exists", "class", v.Class.Key(), "object", id, "keepLastFiles", v.Class.KeepMissing)
		}
	}
	for _, id := range was {
		if !slices.Contains(now, id) {
			v.Log.Info("optional object found; its files are published", "class", v.Class.Key(), "object", id)
		}
	}
}

// Missing returns the IDs of the optional objects the backend did not have
// at the last Refresh (Result.Missing).
func (v *Volume) Missing() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.missing
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
	v.objects, v.rendered, v.renewals, v.missing = nil, nil, nil, nil
	v.mu.Unlock()
}

// Bounds of ReadSecretsDir: a Kubernetes Secret holds at most 1 MiB.
const (
	maxSecretKeys     = 64
	maxSecretDirBytes = 1 << 20
)

// ReadSecretsDir reads a Secret volume (one file per key; kubelet's
// "..data" and timestamped directories are skipped) into a map of key to
// value, for Volume.Secrets. It reads the directory anew at each call,
// so a Secret kubelet updated is used. Errors name the directory and the
// key, never a value.
func ReadSecretsDir(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read nodePublishSecretRef Secret volume %s: %w", dir, err)
	}
	out := map[string]string{}
	var total int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		if len(out) == maxSecretKeys {
			return nil, fmt.Errorf("nodePublishSecretRef Secret volume %s has more than %d keys", dir, maxSecretKeys)
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path) // follows kubelet's symbolic links into ..data
		if err != nil {
			return nil, fmt.Errorf("nodePublishSecretRef Secret volume %s: key %s: %w", dir, name, err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		total += st.Size()
		if total > maxSecretDirBytes {
			return nil, fmt.Errorf("nodePublishSecretRef Secret volume %s holds more than %d bytes", dir, maxSecretDirBytes)
		}
		b, err := os.ReadFile(path) //nolint:gosec // the Secret volume the webhook mounted
		if err != nil {
			return nil, fmt.Errorf("nodePublishSecretRef Secret volume %s: key %s: %w", dir, name, err)
		}
		out[name] = string(b)
	}
	return out, nil
}
