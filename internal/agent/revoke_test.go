package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// psqlPath finds the PostgreSQL client (the postgresql package .ci/run
// installs pulls it in).
func psqlPath() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	dir, err := testenv.PostgresBinDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "psql")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("psql not in PATH nor in %s: install postgresql-client", dir)
	}
	return p, nil
}

// pgConnect logs in to pg with user and password and runs SELECT 1.
func pgConnect(psql string, pg *testenv.Postgres, user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-t", "-c", "SELECT 1",
		fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=5", pg.Port, user))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// psql's message names the role, never the password.
		return fmt.Errorf("psql as %s: %w: %s", user, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// agentTokenAccessors lists the accessors of the tokens Kubernetes logins
// created (the agents').
func agentTokenAccessors(t *testing.T, f *vaultFixture) map[string]bool {
	t.Helper()
	list, err := f.vault.Client.Logical().List("auth/token/accessors")
	if err != nil || list == nil {
		t.Fatalf("list token accessors: %v", err)
	}
	out := map[string]bool{}
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		acc, _ := k.(string)
		look, err := f.vault.Client.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": acc})
		if err != nil || look == nil {
			continue
		}
		if p, _ := look.Data["path"].(string); strings.HasPrefix(p, "auth/kubernetes/login") {
			out[acc] = true
		}
	}
	return out
}

func TestVaultRevokeOnShutdown(t *testing.T) {
	psql, err := psqlPath()
	testenv.RequireCapability(t, "psql", err)
	f := newVaultFixture(t, false)
	pg := testenv.StartPostgres(t)
	f.vault.EnablePostgresDatabase(t, "database", pg, testenv.DatabaseRole{Name: "app", DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour})
	// Vault's default policy lets a token revoke itself but not call
	// sys/leases/revoke: the token's revocation takes its leases along.
	f.vault.Policy(t, "app", `path "secret/data/app/*" { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }`)
	objects := `
- objectName: db-username
  secretPath: database/creds/app
  secretKey: username
- objectName: db-password
  secretPath: database/creds/app
  secretKey: password
- objectName: creds.json
  secretPath: database/creds/app
`
	for _, tc := range []struct {
		name   string
		revoke *agentconfig.RevokeOnShutdown
		// grant lets the token call sys/leases/revoke, which revokes each
		// lease before the agent exits.
		grant bool
	}{
		{"default keeps them", nil, false},
		{"annotated revokes them", &agentconfig.RevokeOnShutdown{Grace: agentconfig.Duration{Duration: 5 * time.Second}}, false},
		{"annotated with sys/leases/revoke granted", &agentconfig.RevokeOnShutdown{Grace: agentconfig.Duration{Duration: 5 * time.Second}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.grant {
				f.vault.Policy(t, "app", `path "secret/data/app/*" { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }`)
			}
			before := agentTokenAccessors(t, f)
			dir := filepath.Join(t.TempDir(), "secrets")
			cfg := f.config(t, dir, "app", agentconfig.ModeSidecar, time.Second)
			cfg.Volumes[0].Class.Parameters["objects"] = objects
			cfg.RevokeOnShutdown = tc.revoke
			h := startAgent(t, cfg, Options{NewProviders: vaultProviders})
			h.waitReady(30 * time.Second)
			user, pass := readFile(t, filepath.Join(dir, "db-username")), readFile(t, filepath.Join(dir, "db-password"))
			suiteLogs.Secret(pass)
			var whole struct {
				LeaseID string `json:"lease_id"`
			}
			if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "creds.json"))), &whole); err != nil || whole.LeaseID == "" {
				t.Fatalf("creds.json has no lease: %v", err)
			}
			if err := pgConnect(psql, pg, user, pass); err != nil {
				t.Fatalf("the fetched credentials do not work: %v", err)
			}
			var tokens []string
			for acc := range agentTokenAccessors(t, f) {
				if !before[acc] {
					tokens = append(tokens, acc)
				}
			}
			if len(tokens) != 1 {
				t.Fatalf("the agent holds %d new Vault tokens, want 1", len(tokens))
			}
			// SIGTERM: with native sidecars kubelet sends it once the
			// application containers have exited.
			took, err := h.stop(10 * time.Second)
			if err != nil {
				t.Fatalf("Run after SIGTERM = %v, want nil", err)
			}
			t.Logf("the agent stopped %s after SIGTERM", took.Round(time.Millisecond))
			_, leaseErr := f.vault.Client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": whole.LeaseID})
			_, tokErr := f.vault.Client.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": tokens[0]})
			if tc.revoke == nil {
				if leaseErr != nil || tokErr != nil {
					t.Errorf("without revoke-on-shutdown: lease lookup %v, token lookup %v; want both alive", leaseErr, tokErr)
				}
				if err := pgConnect(psql, pg, user, pass); err != nil {
					t.Errorf("without revoke-on-shutdown the credentials stopped working: %v", err)
				}
				return
			}
			if took > tc.revoke.Grace.Duration+time.Second {
				t.Errorf("stopping took %s, more than the grace %s", took, tc.revoke.Grace.Duration)
			}
			if tc.grant && leaseErr == nil {
				t.Error("with sys/leases/revoke granted the lease outlived the agent")
			}
			// Vault revokes a revoked token's leases in the background,
			// moments after revoke-self answers: poll within the grace.
			eventually(t, tc.revoke.Grace.Duration, "the lease gone from Vault", func() bool {
				_, leaseErr = f.vault.Client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": whole.LeaseID})
				return leaseErr != nil
			})
			t.Logf("lease lookup after SIGTERM: %v", leaseErr)
			if tokErr == nil {
				t.Error("the agent's Vault token still exists after revoke-on-shutdown")
			}
			eventually(t, tc.revoke.Grace.Duration, "the credentials refused", func() bool {
				err = pgConnect(psql, pg, user, pass)
				return err != nil
			})
			t.Logf("connecting after SIGTERM fails: %v", err)
		})
	}
}
