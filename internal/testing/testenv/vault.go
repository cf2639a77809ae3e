package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// vaultGODEBUG is required by the pinned Vault build: its certificate
// handling predates Go's rejection of negative serial numbers.
const vaultGODEBUG = "x509negativeserial=1"

// DefaultVaultRootToken is the dev-mode root token StartVault uses unless
// VaultOptions.RootToken says otherwise.
const DefaultVaultRootToken = "root"

// VaultOptions tune StartVault.
type VaultOptions struct {
	// Persistent runs Vault with the file storage backend in a temporary
	// directory, initialised with one key share and unsealed, instead of
	// dev mode. Stop and Restart then keep every secret, token and mount.
	// A KV version 2 engine is mounted at secret/ as in dev mode.
	Persistent bool
	// RootToken is the dev-mode root token (default "root"). In persistent
	// mode the root token is the one initialisation returns.
	RootToken string
}

// Vault is a real Vault server (bin/vault) listening on 127.0.0.1. It is
// stopped by pid when the test ends; its log is printed if the test failed.
type Vault struct {
	// Addr is the server's address, http://127.0.0.1:PORT.
	Addr string
	// RootToken authenticates Client.
	RootToken string
	// Client is a Vault API client with the root token.
	Client *vaultapi.Client
	// Persistent is VaultOptions.Persistent.
	Persistent bool
	// Dir holds the configuration, the storage (persistent mode) and the log.
	Dir string
	// LogPath is the server's log file, kept across restarts.
	LogPath string

	t         testing.TB
	bin       string
	port      int
	unsealKey string

	mu   sync.Mutex
	proc *child.Process
}

// StartVault starts a Vault server for the test and waits until it serves
// requests. It skips the test under -short.
func StartVault(t testing.TB, opts VaultOptions) *Vault {
	t.Helper()
	SkipIfShort(t)
	bin, err := Binary("vault")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v := &Vault{
		Persistent: opts.Persistent,
		RootToken:  opts.RootToken,
		Dir:        dir,
		LogPath:    filepath.Join(dir, "vault.log"),
		t:          t,
		bin:        bin,
	}
	if v.RootToken == "" && !v.Persistent {
		v.RootToken = DefaultVaultRootToken
	}
	t.Cleanup(func() {
		if err := v.stop(); err != nil {
			t.Errorf("stop vault: %v", err)
		}
		if t.Failed() {
			t.Logf("vault log (%s):\n%s", v.LogPath, child.LogTail(v.LogPath, 150))
		}
	})
	// The port is chosen free but can be taken before Vault binds it;
	// try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if v.port, err = FreePort(); err != nil {
			t.Fatalf("vault: pick a port: %v", err)
		}
		v.Addr = fmt.Sprintf("http://127.0.0.1:%d", v.port)
		if lastErr = v.start(); lastErr == nil {
			break
		}
		_ = v.stop()
		if !strings.Contains(child.LogTail(v.LogPath, 20), "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start vault: %v\nlog:\n%s", lastErr, child.LogTail(v.LogPath, 60))
	}
	if err := v.setup(); err != nil {
		t.Fatalf("set up vault: %v\nlog:\n%s", err, child.LogTail(v.LogPath, 60))
	}
	return v
}

// start runs the server process and waits until it answers.
func (v *Vault) start() error {
	var args []string
	if v.Persistent {
		cfg := filepath.Join(v.Dir, "vault.hcl")
		if _, err := os.Stat(cfg); err != nil {
			hcl := fmt.Sprintf(`storage "file" {
  path = %q
}
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
api_addr      = %q
disable_mlock = true
ui            = false
`, filepath.Join(v.Dir, "data"), v.port, v.Addr)
			if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
				return err
			}
		}
		args = []string{"server", "-config=" + cfg}
	} else {
		args = []string{"server", "-dev", "-dev-root-token-id=" + v.RootToken,
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port), "-dev-no-store-token"}
	}
	cmd := exec.Command(v.bin, args...) //nolint:gosec // runs the pinned bin/vault
	cmd.Dir = v.Dir
	godebug := vaultGODEBUG
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug += "," + g
	}
	cmd.Env = environ([]string{"VAULT_", "GODEBUG="}, "GODEBUG="+godebug, "HOME="+v.Dir)
	p, err := startProc("vault", v.LogPath, cmd)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.proc = p
	v.mu.Unlock()
	if err := waitTCP(p, fmt.Sprintf("127.0.0.1:%d", v.port), 30*time.Second); err != nil {
		return err
	}
	if v.Client == nil {
		cfg := vaultapi.DefaultConfig()
		cfg.Address = v.Addr
		cfg.MaxRetries = 0
		c, err := vaultapi.NewClient(cfg)
		if err != nil {
			return err
		}
		c.ClearNamespace()
		c.SetToken(v.RootToken)
		v.Client = c
	}
	if v.Persistent && v.unsealKey != "" {
		if _, err := v.Client.Sys().Unseal(v.unsealKey); err != nil {
			return fmt.Errorf("unseal: %w", err)
		}
	}
	if v.Persistent && v.unsealKey == "" {
		return nil // setup initialises
	}
	return v.waitActive(60 * time.Second)
}

// setup initialises and unseals a persistent server and waits until the
// KV engine at secret/ serves.
func (v *Vault) setup() error {
	ctx := context.Background()
	if v.Persistent {
		init, err := v.Client.Sys().InitWithContext(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		v.unsealKey, v.RootToken = init.Keys[0], init.RootToken
		v.Client.SetToken(v.RootToken)
		if _, err := v.Client.Sys().UnsealWithContext(ctx, v.unsealKey); err != nil {
			return fmt.Errorf("unseal: %w", err)
		}
		if err := v.waitActive(60 * time.Second); err != nil {
			return err
		}
		if err := v.Client.Sys().MountWithContext(ctx, "secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("mount secret/ (kv v2): %w", err)
		}
	}
	return v.waitKV("secret", 60*time.Second)
}

// waitActive waits until the server is initialised, unsealed and active.
func (v *Vault) waitActive(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v.mu.Lock()
		p := v.proc
		v.mu.Unlock()
		if done, err := p.Exited(); done {
			return fmt.Errorf("vault exited: %w", exitErr(err))
		}
		h, err := v.Client.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("initialised, unsealed and active not all true")
			}
			return fmt.Errorf("vault at %s not active after %s (health %+v): %w", v.Addr, timeout, h, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitKV waits until a KV version 2 mount has finished its start-up
// upgrade and answers reads.
func (v *Vault) waitKV(mount string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := v.Client.Logical().Read(mount + "/config")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("KV at %s/ not ready after %s: %w", mount, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *Vault) stop() error {
	v.mu.Lock()
	p := v.proc
	v.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(syscall.SIGTERM, 15*time.Second)
}

// Pid is the process id of the running server (0 when stopped).
func (v *Vault) Pid() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		return 0
	}
	if done, _ := v.proc.Exited(); done {
		return 0
	}
	return v.proc.Pid()
}

// Stop stops the server; in persistent mode Restart brings it back with
// its data. Clients then get connection errors on the same address.
func (v *Vault) Stop() {
	v.t.Helper()
	if err := v.stop(); err != nil {
		v.t.Fatalf("stop vault: %v", err)
	}
}

// Restart starts a stopped persistent server again on the same address,
// unseals it and waits until it serves.
func (v *Vault) Restart() {
	v.t.Helper()
	if !v.Persistent {
		v.t.Fatal("Restart needs VaultOptions.Persistent: dev mode keeps nothing")
	}
	if err := v.stop(); err != nil {
		v.t.Fatalf("stop vault: %v", err)
	}
	if err := v.start(); err != nil {
		v.t.Fatalf("restart vault: %v\nlog:\n%s", err, child.LogTail(v.LogPath, 60))
	}
	if err := v.waitKV("secret", 60*time.Second); err != nil {
		v.t.Fatalf("restart vault: %v", err)
	}
}

// Write writes data to path with the root token and returns the response.
func (v *Vault) Write(t testing.TB, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := v.Client.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// Policy writes an ACL policy.
func (v *Vault) Policy(t testing.TB, name, rules string) {
	t.Helper()
	if err := v.Client.Sys().PutPolicy(name, rules); err != nil {
		t.Fatalf("vault policy %s: %v", name, err)
	}
}

// EnableKV1 mounts a KV version 1 engine at path.
func (v *Vault) EnableKV1(t testing.TB, path string) {
	t.Helper()
	if err := v.Client.Sys().Mount(path, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("vault mount kv v1 at %s: %v", path, err)
	}
}

// PutKV1 writes a secret to a KV version 1 mount.
func (v *Vault) PutKV1(t testing.TB, mount, name string, data map[string]any) {
	t.Helper()
	if err := v.Client.KVv1(mount).Put(context.Background(), name, data); err != nil {
		t.Fatalf("vault kv v1 put %s/%s: %v", mount, name, err)
	}
}

// PutKV2 writes a new version of a secret to a KV version 2 mount (secret
// in both modes) and returns the version number.
func (v *Vault) PutKV2(t testing.TB, mount, name string, data map[string]any) int {
	t.Helper()
	s, err := v.Client.KVv2(mount).Put(context.Background(), name, data)
	if err != nil {
		t.Fatalf("vault kv v2 put %s/%s: %v", mount, name, err)
	}
	return s.VersionMetadata.Version
}

// KubernetesRole is a role of a Kubernetes auth mount.
type KubernetesRole struct {
	Name string
	// ServiceAccounts and Namespaces bound ("*" for any).
	ServiceAccounts []string
	Namespaces      []string
	Policies        []string
	// Audience, when set, is the audience the service-account token must
	// carry; Vault also asks the TokenReview for it.
	Audience string
	// TokenTTL and TokenMaxTTL of the Vault tokens the role issues; zero
	// means Vault's default.
	TokenTTL, TokenMaxTTL time.Duration
}

// EnableKubernetesAuth enables Kubernetes auth at mount (default
// "kubernetes") and points it at env's kube-apiserver: a reviewer service
// account bound to system:auth-delegator lends Vault its TokenRequest token
// to call TokenReview, and the API server's CA is trusted.
func (v *Vault) EnableKubernetesAuth(t testing.TB, env *Env, mount string) {
	t.Helper()
	if mount == "" {
		mount = "kubernetes"
	}
	jwt := env.ReviewerToken(t)
	if err := v.Client.Sys().EnableAuthWithOptions(mount, &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("vault enable kubernetes auth at %s: %v", mount, err)
	}
	host := env.Config.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	v.Write(t, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":      host,
		"kubernetes_ca_cert":   string(env.Config.CAData),
		"token_reviewer_jwt":   jwt,
		"disable_local_ca_jwt": true,
	})
}

// KubernetesRole creates or replaces a role of the Kubernetes auth mount.
func (v *Vault) KubernetesRole(t testing.TB, mount string, r KubernetesRole) {
	t.Helper()
	if mount == "" {
		mount = "kubernetes"
	}
	data := map[string]any{
		"bound_service_account_names":      strings.Join(r.ServiceAccounts, ","),
		"bound_service_account_namespaces": strings.Join(r.Namespaces, ","),
		"token_policies":                   strings.Join(r.Policies, ","),
	}
	if r.Audience != "" {
		data["audience"] = r.Audience
	}
	if r.TokenTTL > 0 {
		data["token_ttl"] = int(r.TokenTTL / time.Second)
	}
	if r.TokenMaxTTL > 0 {
		data["token_max_ttl"] = int(r.TokenMaxTTL / time.Second)
	}
	v.Write(t, "auth/"+mount+"/role/"+r.Name, data)
}

// PKIRole is a role of a PKI mount that issues leaf certificates.
type PKIRole struct {
	Name            string
	AllowedDomains  []string
	AllowSubdomains bool
	MaxTTL          time.Duration
}

// EnablePKI mounts a PKI engine at mount, generates a root CA with the
// given common name and creates roles. It returns the CA certificate PEM.
func (v *Vault) EnablePKI(t testing.TB, mount, commonName string, roles ...PKIRole) string {
	t.Helper()
	if err := v.Client.Sys().Mount(mount, &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		t.Fatalf("vault mount pki at %s: %v", mount, err)
	}
	root := v.Write(t, mount+"/root/generate/internal", map[string]any{"common_name": commonName, "ttl": "87600h"})
	ca, _ := root.Data["certificate"].(string)
	if ca == "" {
		t.Fatalf("vault pki %s: root generation returned no certificate", mount)
	}
	for _, r := range roles {
		data := map[string]any{
			"allowed_domains":  strings.Join(r.AllowedDomains, ","),
			"allow_subdomains": r.AllowSubdomains,
		}
		if r.MaxTTL > 0 {
			data["max_ttl"] = int(r.MaxTTL / time.Second)
		}
		v.Write(t, mount+"/roles/"+r.Name, data)
	}
	return ca
}

// DatabaseRole is a dynamic-credentials role of a database mount.
type DatabaseRole struct {
	Name string
	// DefaultTTL and MaxTTL of the credentials' lease.
	DefaultTTL, MaxTTL time.Duration
}

// EnablePostgresDatabase mounts a database secrets engine at mount whose
// connection "postgres" points at pg, and creates roles that mint login
// roles with renewable leases.
func (v *Vault) EnablePostgresDatabase(t testing.TB, mount string, pg *Postgres, roles ...DatabaseRole) {
	t.Helper()
	if err := v.Client.Sys().Mount(mount, &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatalf("vault mount database at %s: %v", mount, err)
	}
	cfg := map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", pg.Port),
		"username":       pg.User,
		"password":       pg.Password,
		"allowed_roles":  "*",
	}
	// The server accepts TCP connections a moment before it accepts logins.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := v.Client.Logical().Write(mount+"/config/postgres", cfg)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault database config: %v\npostgres log:\n%s", err, child.LogTail(pg.LogPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range roles {
		v.Write(t, mount+"/roles/"+r.Name, map[string]any{
			"db_name": "postgres",
			"creation_statements": []string{
				`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			},
			"default_ttl": int(r.DefaultTTL / time.Second),
			"max_ttl":     int(r.MaxTTL / time.Second),
		})
	}
}

// VaultAudit is a file audit device of a test server, used to count the
// requests a client made (logins, renewals, reads).
type VaultAudit struct {
	// Path is the audit log file.
	Path string
}

// EnableFileAudit enables a file audit device writing to the test's Vault
// directory.
func (v *Vault) EnableFileAudit(t testing.TB) *VaultAudit {
	t.Helper()
	p := filepath.Join(v.Dir, "audit.log")
	if err := v.Client.Sys().EnableAuditWithOptions("file", &vaultapi.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": p}}); err != nil {
		t.Fatalf("vault enable file audit: %v", err)
	}
	return &VaultAudit{Path: p}
}

// AuditRequest is one request entry of the audit log.
type AuditRequest struct {
	Operation string
	Path      string
}

// Requests returns the request entries logged so far, in order.
func (a *VaultAudit) Requests() ([]AuditRequest, error) {
	f, err := os.Open(a.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []AuditRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// The last line may be half written.
			continue
		}
		if e.Type == "request" {
			out = append(out, AuditRequest{Operation: e.Request.Operation, Path: e.Request.Path})
		}
	}
	return out, sc.Err()
}

// Count returns how many requests to path were logged so far.
func (a *VaultAudit) Count(t testing.TB, path string) int {
	t.Helper()
	reqs, err := a.Requests()
	if err != nil {
		t.Fatalf("read vault audit log: %v", err)
	}
	n := 0
	for _, r := range reqs {
		if r.Path == path {
			n++
		}
	}
	return n
}
