package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// cloudRecorder is a fake provider that records the cloud identity each
// class was fetched with.
type cloudRecorder struct {
	*fakeProvider
	mu  sync.Mutex
	got map[string]identity.Cloud
}

func (c *cloudRecorder) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	c.mu.Lock()
	c.got[req.Class.Name] = req.Identity.Cloud
	c.mu.Unlock()
	return c.fakeProvider.Fetch(ctx, req)
}

// TestVolumeIdentities: each volume is fetched with its own identity from
// the configuration; a volume without one (a configuration written before
// Volume.Cloud existed) with the pod-wide Config.Cloud.
func TestVolumeIdentities(t *testing.T) {
	rec := &cloudRecorder{fakeProvider: newFake("fake", map[string]string{"obj": "identity-value-01"}), got: map[string]identity.Cloud{}}
	cfg := testConfig(t, agentconfig.ModeInitOnly, 0, "a", "b", "c")
	cfg.Cloud = identity.Cloud{AzureClientID: "pod-wide", AzureTenantID: "t"}
	cfg.Volumes[0].Cloud = &identity.Cloud{AzureClientID: "class-client", AzureTenantID: "t"}
	cfg.Volumes[1].Cloud = &identity.Cloud{}
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(rec)})
	if err := h.wait(5 * time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := map[string]identity.Cloud{
		"a": {AzureClientID: "class-client", AzureTenantID: "t"},
		"b": {},
		"c": {AzureClientID: "pod-wide", AzureTenantID: "t"},
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if diff := cmp.Diff(want, rec.got); diff != "" {
		t.Errorf("identities fetched with (-want +got):\n%s", diff)
	}
}
