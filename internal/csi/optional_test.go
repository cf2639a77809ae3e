package csi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// maybeProvider serves a vault class's objects "db" and, while it exists,
// "maybe"; a missing "maybe" is reported as the providers do (NotFound in
// provider.Errors, with the other objects).
type maybeProvider struct {
	mu     sync.Mutex
	exists bool
}

func (p *maybeProvider) Name() string { return spc.ProviderVault }

func (p *maybeProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []provider.Object{{ID: "db", Version: "1", Files: []atomicdir.File{{Path: "db", Data: []byte("pw")}}}}
	if !p.exists {
		return provider.Partial(out, []*provider.Error{{Class: req.Class.Key(), Provider: "vault", Object: "maybe", Reason: provider.ReasonNotFound, Err: errors.New("404")}})
	}
	return append(out, provider.Object{ID: "maybe", Version: "1", Files: []atomicdir.File{{Path: "maybe", Data: []byte("tok")}}}), nil
}

// The shim serves optional objects through volume.Refresh like the agent,
// and a change of the class's optional-objects annotations is a change of
// the class: the next republish starts over (here: kept files of a
// missing object go once on-delete becomes remove).
func TestShimOptionalAnnotationChange(t *testing.T) {
	cls := spcObject("team-a", "db", "vault", map[string]string{"roleName": "r", "vaultAddress": "https://vault:8200",
		"objects": "- {objectName: db, secretPath: secret/data/db, secretKey: p}\n- {objectName: maybe, secretPath: secret/data/maybe, secretKey: t}\n"})
	cls.Annotations = map[string]string{spc.AnnotationOptionalObjects: "maybe", spc.AnnotationOptionalOnDelete: "keep"}
	p := &maybeProvider{exists: true}
	h := newHarness(t, func(o *Options) { o.Providers = provider.NewSet(p) }, cls)
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	publish := func() {
		t.Helper()
		h.clk.Step(3 * time.Minute) // past the rotation poll interval
		if _, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web)); err != nil {
			t.Fatal(err)
		}
	}
	want := func(files ...string) {
		t.Helper()
		got := readVolume(t, target)
		if len(got) != len(files) {
			t.Fatalf("files %v, want %v", got, files)
		}
		for _, f := range files {
			if _, ok := got[f]; !ok {
				t.Fatalf("files %v, want %v", got, files)
			}
		}
	}
	publish()
	want("db", "maybe")
	p.mu.Lock()
	p.exists = false
	p.mu.Unlock()
	publish()
	want("db", "maybe") // kept
	c := h.d.deps.Classes.(client.Client)
	cls.Annotations[spc.AnnotationOptionalOnDelete] = "remove"
	if err := c.Update(context.Background(), cls); err != nil {
		t.Fatal(err)
	}
	publish()
	want("db")
}
