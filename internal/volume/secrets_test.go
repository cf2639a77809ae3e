package volume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// kubeletSecretVolume lays keys out as kubelet's Secret volume does.
func kubeletSecretVolume(t *testing.T, dir, stamp string, keys map[string]string) {
	t.Helper()
	ts := filepath.Join(dir, stamp)
	if err := os.MkdirAll(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range keys {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(dir, k))
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// secretsProvider records the Secrets of each request.
type secretsProvider struct{ got []map[string]string }

func (p *secretsProvider) Name() string { return "rec" }
func (p *secretsProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	p.got = append(p.got, req.Secrets)
	return []provider.Object{{ID: "a", Version: "1"}}, nil
}

// TestSecretsReadAtEveryRefresh: a Secret volume's keys (kubelet's layout,
// its ..data and timestamped directories skipped) reach the provider as
// Request.Secrets, read anew at each Refresh, so a Secret kubelet updated
// is used; too many bytes fail naming the directory, not values.
func TestSecretsReadAtEveryRefresh(t *testing.T) {
	dir := t.TempDir()
	kubeletSecretVolume(t, dir, "..2026_01", map[string]string{"clientid": "c1", "clientsecret": "s1"})
	c, err := spc.ParseSpec("ns", "c", "rec", map[string]string{"x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	p := &secretsProvider{}
	v := &Volume{Class: c, Dir: t.TempDir(), Secrets: func() (map[string]string, error) { return ReadSecretsDir(dir) }}
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	kubeletSecretVolume(t, dir, "..2026_02", map[string]string{"clientid": "c1", "clientsecret": "s2"})
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 2 || p.got[0]["clientsecret"] != "s1" || p.got[1]["clientsecret"] != "s2" || len(p.got[1]) != 2 {
		t.Fatalf("secrets seen = %v", p.got)
	}

	big := t.TempDir()
	if err := os.WriteFile(filepath.Join(big, "key.json"), []byte(strings.Repeat("x", maxSecretDirBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretsDir(big); err == nil || !strings.Contains(err.Error(), big) || strings.Contains(err.Error(), "xxx") {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := ReadSecretsDir(filepath.Join(big, "missing")); err == nil {
		t.Fatal("a missing directory read")
	}
}
