package testenv

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

func TestVaultPersistentSurvivesRestart(t *testing.T) {
	v := StartVault(t, VaultOptions{Persistent: true})
	v.PutKV2(t, "secret", "app", map[string]any{"password": "before-restart"})
	pid := v.Pid()
	v.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("vault pid %d still alive after Stop", pid)
	}
	if _, err := v.Client.Logical().Read("secret/data/app"); err == nil {
		t.Fatal("read succeeded while vault is stopped")
	}
	v.Restart()
	if v.Pid() == 0 || v.Pid() == pid {
		t.Fatalf("restart: pid %d (was %d)", v.Pid(), pid)
	}
	s, err := v.Client.KVv2("secret").Get(context.Background(), "app")
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if got := s.Data["password"]; got != "before-restart" {
		t.Fatalf("after restart password = %v", got)
	}
}

func TestVaultKubernetesAuthAndDatabase(t *testing.T) {
	env := Start(t, Options{})
	v := StartVault(t, VaultOptions{})
	audit := v.EnableFileAudit(t)
	pg := StartPostgres(t)

	ns := env.Namespace(t, "vault-login", nil)
	env.ServiceAccount(t, ns, "app", nil)
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "db", `path "database/creds/app" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", KubernetesRole{Name: "app", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"db"}})
	v.KubernetesRole(t, "", KubernetesRole{Name: "aud", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"db"}, Audience: "vault"})
	v.EnablePostgresDatabase(t, "database", pg, DatabaseRole{Name: "app", DefaultTTL: time.Minute, MaxTTL: time.Hour})

	ctx := context.Background()
	login := func(role, audience string) (*vaultapi.Secret, error) {
		jwt, err := env.Tokens(ns, "app", 0).Token(ctx, audience)
		if err != nil {
			t.Fatal(err)
		}
		return v.Client.Logical().Write("auth/kubernetes/login", map[string]any{"role": role, "jwt": jwt})
	}
	auth, err := login("app", "")
	if err != nil {
		t.Fatalf("login with a default-audience token: %v", err)
	}
	if _, err := login("aud", "other"); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("login with a wrong-audience token: err = %v, want an audience error", err)
	}
	if _, err := login("aud", "vault"); err != nil {
		t.Fatalf("login with audience vault: %v", err)
	}

	c, err := v.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(auth.Auth.ClientToken)
	creds, err := c.Logical().Read("database/creds/app")
	if err != nil {
		t.Fatalf("read database creds: %v", err)
	}
	if creds.LeaseID == "" || !creds.Renewable || creds.Data["username"] == nil {
		t.Fatalf("database creds: lease %q renewable %v data keys %d", creds.LeaseID, creds.Renewable, len(creds.Data))
	}
	if n := audit.Count(t, "database/creds/app"); n != 1 {
		t.Fatalf("audit log counts %d reads of database/creds/app, want 1", n)
	}
}
