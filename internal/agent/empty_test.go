package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
)

// A class whose object list is explicitly empty (objects: "[]") mounts an
// empty volume and keeps rotating; it does not fail the pod.
func TestVaultEmptyObjectList(t *testing.T) {
	f := newVaultFixture(t, false)
	dir := filepath.Join(t.TempDir(), "secrets")
	cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, time.Second)
	cfg.Volumes[0].Class.Parameters["objects"] = "[]"
	h := startAgent(t, cfg, Options{NewProviders: vaultProviders})
	h.waitReady(30 * time.Second)
	eventually(t, 10*time.Second, "rotations of the empty class", func() bool {
		return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "unchanged"}) >= 2
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name()[0] != '.' {
			t.Errorf("the empty class wrote %s", e.Name())
		}
	}
	if _, err := h.stop(5 * time.Second); err != nil {
		t.Errorf("Run = %v", err)
	}
}
