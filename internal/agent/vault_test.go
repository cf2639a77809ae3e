package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/vault"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// vaultFixture is a real kube-apiserver and a real Vault whose Kubernetes
// auth checks the pod's projected token (minted by TokenRequest for a test
// service account) with TokenReview.
type vaultFixture struct {
	env       *testenv.Env
	vault     *testenv.Vault
	ns, sa    string
	tokenFile string
}

func newVaultFixture(t testing.TB, persistent bool) *vaultFixture {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	v := testenv.StartVault(t, testenv.VaultOptions{Persistent: persistent})
	f := &vaultFixture{env: env, vault: v, sa: "app"}
	f.ns = env.Namespace(t, "agent-vault", nil)
	env.ServiceAccount(t, f.ns, f.sa, nil)
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "app", `path "secret/data/app/*" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "app", ServiceAccounts: []string{f.sa}, Namespaces: []string{f.ns}, Policies: []string{"app"}})
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "nobody", ServiceAccounts: []string{"someone-else"}, Namespaces: []string{f.ns}, Policies: []string{"app"}})
	// What kubelet projects into the agent container.
	tok, err := env.Token(context.Background(), f.ns, f.sa, nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f.tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// put writes a KV v2 secret under secret/app/ and registers its value.
func (f *vaultFixture) put(t testing.TB, name, value string) {
	t.Helper()
	suiteLogs.Secret(value)
	f.vault.PutKV2(t, "secret", "app/"+name, map[string]any{"value": value})
}

// config is a one-volume agent configuration reading objects (name →
// secret name under secret/app/) with role.
func (f *vaultFixture) config(t testing.TB, dir, role string, mode agentconfig.Mode, interval time.Duration, objects ...string) *agentconfig.Config {
	t.Helper()
	var b strings.Builder
	for _, o := range objects {
		name, path, _ := strings.Cut(o, "=")
		if path == "" {
			path = name
		}
		fmt.Fprintf(&b, "- objectName: %s\n  secretPath: secret/data/app/%s\n  secretKey: value\n", name, path)
	}
	return &agentconfig.Config{
		APIVersion:       agentconfig.APIVersion,
		Mode:             mode,
		RotationInterval: agentconfig.Duration{Duration: interval},
		Tokens:           []agentconfig.Token{{Audience: "", Path: f.tokenFile}},
		Volumes: []agentconfig.Volume{{Name: "secrets", Path: dir, Class: agentconfig.Class{
			Namespace: f.ns, Name: "app-secrets", Provider: "vault",
			Parameters: map[string]string{"vaultAddress": f.vault.Addr, "roleName": role, "objects": b.String()},
		}}},
	}
}

// vaultProviders wires the real Vault provider as ssi-agent's main does.
func vaultProviders(log *slog.Logger) provider.Set {
	return provider.NewSet(vault.New(vault.Options{Logger: log}))
}

func randomValue(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func TestVaultRotationWithinOneInterval(t *testing.T) {
	f := newVaultFixture(t, false)
	v1, other := randomValue("db-password"), randomValue("api-token")
	f.put(t, "db", v1)
	f.put(t, "api", other)
	dir := filepath.Join(t.TempDir(), "secrets")
	const interval = time.Second
	cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, interval, "db-password=db", "api-token=api")
	h := startAgent(t, cfg, Options{NewProviders: vaultProviders})
	h.waitReady(30 * time.Second)
	if got := readFile(t, filepath.Join(dir, "db-password")); got != v1 {
		t.Fatalf("db-password is not the value in Vault")
	}
	// Let a few unchanged rotations pass, then change the secret.
	eventually(t, 10*time.Second, "unchanged rotations", func() bool {
		return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "unchanged"}) >= 2
	})
	gen := dataTarget(t, dir)
	v2 := randomValue("db-password")
	f.put(t, "db", v2)
	changed := time.Now()
	eventually(t, 3*interval, "the new value in the file", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "db-password"))
		return string(b) == v2
	})
	took := time.Since(changed)
	t.Logf("a change in Vault reached the file after %s (interval %s)", took.Round(time.Millisecond), interval)
	if took > interval+500*time.Millisecond {
		t.Errorf("the change took %s, more than one interval (%s) plus a fetch", took, interval)
	}
	if dataTarget(t, dir) == gen {
		t.Error("..data did not move")
	}
	if got := readFile(t, filepath.Join(dir, "api-token")); got != other {
		t.Error("api-token changed")
	}
}

func TestVaultStoppedDuringRotation(t *testing.T) {
	f := newVaultFixture(t, true)
	v1 := randomValue("db-password")
	f.put(t, "db", v1)
	dir := filepath.Join(t.TempDir(), "secrets")
	cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, 200*time.Millisecond, "db-password=db")
	h := startAgent(t, cfg, Options{NewProviders: vaultProviders, RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	h.waitReady(30 * time.Second)
	gen := dataTarget(t, dir)
	st, err := os.Stat(filepath.Join(dir, "db-password"))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"volume": "secrets", "provider": "vault"}

	f.vault.Stop()
	// The Vault client retries a refused connection itself for a few
	// seconds before a fetch fails.
	eventually(t, 30*time.Second, "failed rotations", func() bool {
		return h.metric("ssi_agent_volume_consecutive_failures", labels) >= 2
	})
	if n := h.metric("ssi_agent_errors_total", map[string]string{"provider": "vault", "reason": "Unavailable"}); n < 2 {
		t.Errorf("errors_total{reason=Unavailable} = %v while Vault is down", n)
	}
	if got := readFile(t, filepath.Join(dir, "db-password")); got != v1 {
		t.Error("db-password changed while Vault was down")
	}
	st2, err := os.Stat(filepath.Join(dir, "db-password"))
	if err != nil || !st2.ModTime().Equal(st.ModTime()) || st2.Size() != st.Size() {
		t.Errorf("db-password was touched while Vault was down: %v", err)
	}
	if dataTarget(t, dir) != gen {
		t.Error("..data moved while Vault was down")
	}
	if code, _ := h.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d while Vault is down; the files are there", code)
	}
	if s := h.metric("ssi_agent_volume_staleness_seconds", labels); s < 0.3 {
		t.Errorf("staleness %vs while Vault is down", s)
	}

	f.vault.Restart()
	v2 := randomValue("db-password")
	f.put(t, "db", v2)
	eventually(t, 15*time.Second, "recovered with the new value", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "db-password"))
		return string(b) == v2
	})
	eventually(t, 5*time.Second, "failures reset", func() bool {
		return h.metric("ssi_agent_volume_consecutive_failures", labels) == 0
	})
}

func TestVaultFirstFetchFailureTerminationMessage(t *testing.T) {
	f := newVaultFixture(t, false)
	present := randomValue("present")
	f.put(t, "present", present)
	tests := map[string]struct {
		role    string
		objects []string
		want    []string
	}{
		"secret missing": {role: "app", objects: []string{"present", "db-password=missing"},
			want: []string{"SecretProviderClass " + f.ns + "/app-secrets (provider vault)", `object "db-password"`, "NotFound"}},
		"role does not admit the service account": {role: "nobody", objects: []string{"present"},
			want: []string{"SecretProviderClass " + f.ns + "/app-secrets (provider vault)", "Unauthenticated", `role "nobody"`, "service account name not authorized"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := f.config(t, filepath.Join(t.TempDir(), "secrets"), tc.role, agentconfig.ModeSidecar, time.Minute, tc.objects...)
			cfg.FirstFetchTimeout.Duration = 2 * time.Second
			h := startAgent(t, cfg, Options{NewProviders: vaultProviders, RetryBase: 100 * time.Millisecond})
			err := h.wait(30 * time.Second)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			msg, rerr := os.ReadFile(h.termLog)
			if rerr != nil {
				t.Fatal(rerr)
			}
			note("termination message: %s", msg)
			t.Logf("termination message: %s", msg)
			want := append([]string{"first fetch did not complete within 2s", "volume secrets"}, tc.want...)
			for _, w := range want {
				if !strings.Contains(string(msg), w) {
					t.Errorf("termination message lacks %q", w)
				}
			}
			if strings.Contains(string(msg), present) {
				t.Error("termination message holds a secret value")
			}
		})
	}
}
