package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// vaultServer is a real Vault with Kubernetes auth against a real
// kube-apiserver, one KV v2 secret, and a projected-style token file.
func vaultServer(t *testing.T) (v *testenv.Vault, ns, tokenFile, value string) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	v = testenv.StartVault(t, testenv.VaultOptions{})
	ns = env.Namespace(t, "agent-cmd", nil)
	env.ServiceAccount(t, ns, "app", nil)
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "app", `path "secret/data/app/*" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "app", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"app"}, Audience: "vault"})
	value = "cmd-test-value-" + ns
	v.PutKV2(t, "secret", "app/db", map[string]any{"password": value})
	tok, err := env.Token(context.Background(), ns, "app", []string{"vault"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return v, ns, tokenFile, value
}

const classParams = `    roleName: app
    audience: vault
    objects: |
      - objectName: db-password
        secretPath: secret/data/app/db
        secretKey: password
`

// TestFetchCommandAgainstVault runs `ssi-agent fetch` as a user would: the
// class names no vaultAddress, so VAULT_ADDR selects the server; the token
// file is used for the audience the class asks for; without it, the
// ambient VAULT_TOKEN is used.
func TestFetchCommandAgainstVault(t *testing.T) {
	v, ns, tokenFile, value := vaultServer(t)
	spcFile := filepath.Join(t.TempDir(), "spc.yaml")
	spc := "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: local\n  namespace: " + ns +
		"\nspec:\n  provider: vault\n  parameters:\n" + classParams
	if err := os.WriteFile(spcFile, []byte(spc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", v.Addr)
	tests := map[string]struct {
		args       []string
		vaultToken string
		wantErr    string
	}{
		"service-account token file": {args: []string{"--token-file", tokenFile}},
		"ambient VAULT_TOKEN":        {vaultToken: v.RootToken},
		"no credentials":             {wantErr: "SecretProviderClass " + ns + "/local (provider vault)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("VAULT_TOKEN", tc.vaultToken)
			if tc.vaultToken == "" {
				_ = os.Unsetenv("VAULT_TOKEN")
			}
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"fetch", "--spc", spcFile, "--out", out, "--timeout", "3s"}, tc.args...)
			err := run(context.Background(), args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), value) {
					t.Error("the error holds the secret value")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(out, "db-password"))
			if err != nil || string(b) != value {
				t.Fatalf("db-password = %q, %v", b, err)
			}
			if _, err := os.Readlink(filepath.Join(out, "..data")); err != nil {
				t.Errorf("not laid out as in the pod: %v", err)
			}
		})
	}
}

// TestRunCommandAgainstVault runs `ssi-agent run` with the environment the
// webhook sets and the built-in providers, until SIGTERM (cancellation).
func TestRunCommandAgainstVault(t *testing.T) {
	v, ns, tokenFile, value := vaultServer(t)
	dir := filepath.Join(t.TempDir(), "secrets")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := &agentconfig.Config{
		Mode:             agentconfig.ModeSidecar,
		RotationInterval: agentconfig.Duration{Duration: time.Minute},
		HealthAddr:       addr,
		Tokens:           []agentconfig.Token{{Audience: "vault", Path: tokenFile}},
		Volumes: []agentconfig.Volume{{Name: "secrets", Path: dir, Class: agentconfig.Class{
			Namespace: ns, Name: "app", Provider: "vault",
			Parameters: map[string]string{"vaultAddress": v.Addr, "roleName": "app", "audience": "vault",
				"objects": "- objectName: db-password\n  secretPath: secret/data/app/db\n  secretKey: password\n"},
		}}},
	}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(agentconfig.EnvConfig, enc)
	t.Setenv(agentconfig.EnvPodNamespace, ns)
	t.Setenv(agentconfig.EnvPodName, "app-0")
	t.Setenv(agentconfig.EnvServiceAccount, "app")
	ctx, cancel := context.WithCancel(context.Background())
	termLog := filepath.Join(t.TempDir(), "termination-log")
	stop := testenv.Background(t, "run", 5*time.Second, cancel, func() error { return run(ctx, []string{"run", "--termination-log", termLog}) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "db-password")); err == nil && string(b) == value {
			break
		}
		if time.Now().After(deadline) {
			stop() // reports how run ended
			t.Fatal("db-password not written within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop() // as SIGTERM: run must return nil
}
