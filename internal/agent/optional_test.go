package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/spc"
)

// Optional objects against a real Vault, through the agent's own first
// fetch and rotation loop: an optional secret missing at start neither
// fails the first fetch nor the startup probe, its file appears at the
// rotation after the secret is written, and when it is deleted again (a
// KV v2 soft delete with the default on-delete, a destroy with on-delete:
// remove — Vault answers both 404 with the version's metadata — or, with
// on-delete: keep, the whole secret's metadata: a plain 404) the file
// goes, or with keep stays with its last content; written again, it is
// back. A required secret missing
// still fails the first fetch, naming the class, the object and the cause.
func TestVaultOptionalObjects(t *testing.T) {
	f := newVaultFixture(t, false)
	const interval = 200 * time.Millisecond
	rotations := func(h *harness) float64 {
		return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "unchanged"}) +
			h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "changed"})
	}
	for _, tc := range []struct {
		onDelete string
		// remove deletes the secret: a soft delete of its latest version,
		// or its metadata (every version).
		remove func(t *testing.T, name string)
		keep   bool
	}{
		{onDelete: "", remove: func(t *testing.T, name string) {
			if err := f.vault.Client.KVv2("secret").Delete(context.Background(), "app/"+name); err != nil {
				t.Fatal(err)
			}
		}},
		{onDelete: "remove", remove: func(t *testing.T, name string) {
			// Destroyed for good: Vault answers 404 with the version's
			// metadata (destroyed: true).
			kv := f.vault.Client.KVv2("secret")
			md, err := kv.GetMetadata(context.Background(), "app/"+name)
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.Destroy(context.Background(), "app/"+name, []int{md.CurrentVersion}); err != nil {
				t.Fatal(err)
			}
		}},
		{onDelete: "keep", keep: true, remove: func(t *testing.T, name string) {
			if err := f.vault.Client.KVv2("secret").DeleteMetadata(context.Background(), "app/"+name); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run("on-delete="+tc.onDelete, func(t *testing.T) {
			base := randomValue("maybe")
			present := randomValue("present")
			f.put(t, base+"-present", present)
			dir := filepath.Join(t.TempDir(), "secrets")
			cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, interval, "present="+base+"-present", "maybe="+base)
			cfg.Volumes[0].Class.Annotations = map[string]string{spc.AnnotationOptionalObjects: "maybe"}
			if tc.onDelete != "" {
				cfg.Volumes[0].Class.Annotations[spc.AnnotationOptionalOnDelete] = tc.onDelete
			}
			h := startAgent(t, cfg, Options{NewProviders: vaultProviders})
			h.waitReady(30 * time.Second)
			if got := readFile(t, filepath.Join(dir, "present")); got != present {
				t.Fatal("present is not the value in Vault")
			}
			if _, err := os.Lstat(filepath.Join(dir, "maybe")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("maybe exists before the secret does: %v", err)
			}
			missing := map[string]string{"volume": "secrets"}
			if n := h.metric("ssi_agent_volume_optional_objects_missing", missing); n != 1 {
				t.Errorf("optional_objects_missing = %v, want 1", n)
			}
			// Rotations pass without the secret and without failing.
			eventually(t, 10*time.Second, "rotations without the optional secret", func() bool { return rotations(h) >= 3 })
			if n := h.metric("ssi_agent_volume_consecutive_failures", map[string]string{"volume": "secrets"}); n != 0 {
				t.Errorf("consecutive failures = %v while the optional secret is missing", n)
			}

			v1 := randomValue("maybe-value")
			f.put(t, base, v1)
			eventually(t, 5*time.Second, "maybe appears", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "maybe"))
				return err == nil && string(b) == v1
			})
			// The files are swapped in before the volume records what it
			// published: the gauge follows a moment later.
			eventually(t, 5*time.Second, "optional_objects_missing 0 once the secret exists", func() bool {
				return h.metric("ssi_agent_volume_optional_objects_missing", missing) == 0
			})

			tc.remove(t, base)
			if !tc.keep {
				eventually(t, 5*time.Second, "maybe removed", func() bool {
					_, err := os.Lstat(filepath.Join(dir, "maybe"))
					return errors.Is(err, fs.ErrNotExist)
				})
			} else {
				at := rotations(h)
				eventually(t, 10*time.Second, "rotations after the delete", func() bool { return rotations(h) >= at+3 })
				if got := readFile(t, filepath.Join(dir, "maybe")); got != v1 {
					t.Error("with on-delete: keep, maybe lost its last content")
				}
			}
			if got := readFile(t, filepath.Join(dir, "present")); got != present {
				t.Error("present changed")
			}
			if n := h.metric("ssi_agent_volume_consecutive_failures", map[string]string{"volume": "secrets"}); n != 0 {
				t.Errorf("consecutive failures = %v after the optional secret was deleted", n)
			}

			// Written again: back in the file, whatever on-delete says.
			v2 := randomValue("maybe-value")
			f.put(t, base, v2)
			eventually(t, 5*time.Second, "maybe back", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "maybe"))
				return err == nil && string(b) == v2
			})
		})
	}

	t.Run("required missing", func(t *testing.T) {
		present := randomValue("present")
		name := randomValue("req")
		f.put(t, name+"-present", present)
		cfg := f.config(t, filepath.Join(t.TempDir(), "secrets"), "app", agentconfig.ModeSidecar, time.Minute,
			"present="+name+"-present", "maybe="+name+"-maybe", "required="+name)
		cfg.Volumes[0].Class.Annotations = map[string]string{spc.AnnotationOptionalObjects: "maybe"}
		cfg.FirstFetchTimeout.Duration = 2 * time.Second
		h := startAgent(t, cfg, Options{NewProviders: vaultProviders, RetryBase: 100 * time.Millisecond})
		if err := h.wait(30 * time.Second); err == nil {
			t.Fatal("Run succeeded with a required secret missing")
		}
		msg, err := os.ReadFile(h.termLog)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("termination message: %s", msg)
		for _, w := range []string{"SecretProviderClass " + f.ns + "/app-secrets (provider vault)", `object "required"`, "NotFound", "secret/data/app/" + name, "404"} {
			if !strings.Contains(string(msg), w) {
				t.Errorf("termination message lacks %q", w)
			}
		}
		if strings.Contains(string(msg), `object "maybe"`) {
			t.Error("the termination message blames the optional object")
		}
	})
}
