package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// seedVaultClass is the seed guide's Vault SecretProviderClass.
const seedVaultClass = "../../test/testdata/seed/vault-secret-provider.yaml"

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const vaultClassYAML = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: local-vault
%s
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: db-password
        secretPath: secret/data/db
        secretKey: password
`

func TestReadClassFile(t *testing.T) {
	deployment := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
	tests := map[string]struct {
		content   string
		path      string
		wantKey   string
		wantFiles []string
		wantErr   string
	}{
		"seed guide's vault class": {path: seedVaultClass, wantKey: "production/vault-secrets", wantFiles: []string{"api-token", "db-password"}},
		"no namespace is default":  {content: strings.Replace(vaultClassYAML, "%s", "", 1), wantKey: "default/local-vault", wantFiles: []string{"db-password"}},
		"with namespace":           {content: strings.Replace(vaultClassYAML, "%s", "  namespace: dev", 1), wantKey: "dev/local-vault"},
		"among other documents": {content: deployment + "---\n" + strings.Replace(vaultClassYAML, "%s", "", 1) + "---\n" + deployment,
			wantKey: "default/local-vault"},
		"no class":          {content: deployment, wantErr: "holds no SecretProviderClass"},
		"two classes":       {content: strings.Replace(vaultClassYAML, "%s", "", 1) + "---\n" + strings.Replace(vaultClassYAML, "%s", "", 1), wantErr: "holds 2 SecretProviderClasses"},
		"wrong group":       {content: strings.Replace(strings.Replace(vaultClassYAML, "%s", "", 1), "secrets-store.csi.x-k8s.io/v1", "example.com/v1", 1), wantErr: `apiVersion "example.com/v1"`},
		"invalid parameter": {content: strings.Replace(strings.Replace(vaultClassYAML, "%s", "", 1), "roleName: app", "vaultAddress: ftp://x", 1), wantErr: "SecretProviderClass default/local-vault (provider vault): parameters.vaultAddress"},
		"not YAML":          {content: "kind: [", wantErr: "document 1 (line 1)"},
		"tab and comment after the marker": {content: deployment + "---\t# the class\n" + strings.Replace(vaultClassYAML, "%s", "", 1),
			wantKey: "default/local-vault"},
		"CRLF": {content: strings.ReplaceAll(deployment+"---\n"+strings.Replace(vaultClassYAML, "%s", "", 1), "\n", "\r\n"), wantKey: "default/local-vault"},
		"content after the marker": {content: deployment + "--- !!map\n" + strings.Replace(vaultClassYAML, "%s", "", 1),
			wantErr: `spc.yaml: line 5: "!!map" after the document marker "---"`},
		"error names the line": {content: deployment + "---\n# the class\n" + strings.Replace(strings.Replace(vaultClassYAML, "%s", "", 1), "secrets-store.csi.x-k8s.io/v1", "example.com/v1", 1),
			wantErr: `document 2 (line 6): SecretProviderClass of apiVersion "example.com/v1"`},
		"missing file": {path: "/nonexistent/spc.yaml", wantErr: "read SecretProviderClass file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = writeTemp(t, "spc.yaml", tc.content)
			}
			c, err := ReadClassFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Key() != tc.wantKey || c.Vault == nil {
				t.Errorf("class %s (vault %v), want %s", c.Key(), c.Vault != nil, tc.wantKey)
			}
			if tc.wantFiles != nil {
				var got []string
				for _, f := range c.Files() {
					got = append(got, f.Path)
				}
				if strings.Join(got, ",") != strings.Join(tc.wantFiles, ",") {
					t.Errorf("files %v, want %v", got, tc.wantFiles)
				}
			}
		})
	}
}

func TestFetchLocalMode(t *testing.T) {
	tokenFile := writeTemp(t, "token", "local-sa-token-abc\n")
	suiteLogs.Secret("local-sa-token-abc")
	tests := map[string]struct {
		tokenFile string
		audience  string
		wantErr   string
	}{
		"token file for the vault audience":   {tokenFile: tokenFile, audience: "vault"},
		"token file for any audience":         {tokenFile: tokenFile, audience: "sts.amazonaws.com"},
		"token file for the default audience": {tokenFile: tokenFile, audience: ""},
		"no provider needs a token":           {},
		"no token file":                       {audience: "vault", wantErr: "local mode without --token-file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake("vault", map[string]string{"db-password": "local-db-pw-01", "api-token": "local-api-tok-01"})
			if tc.tokenFile != "" || tc.wantErr != "" {
				f.audiences = []string{tc.audience}
			}
			out := filepath.Join(t.TempDir(), "out")
			err := Fetch(context.Background(), FetchOptions{
				Providers: provider.NewSet(f),
				SPCFile:   seedVaultClass,
				OutDir:    out,
				TokenFile: tc.tokenFile,
				Timeout:   300 * time.Millisecond,
				RetryBase: 10 * time.Millisecond,
				LogOutput: suiteLogs.Tee(t),
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "production/vault-secrets") {
					t.Fatalf("err = %v, want it to name the class and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(out, "db-password")); got != "local-db-pw-01" {
				t.Errorf("db-password = %q", got)
			}
			if got := readFile(t, filepath.Join(out, "api-token")); got != "local-api-tok-01" {
				t.Errorf("api-token = %q", got)
			}
			if _, err := os.Readlink(filepath.Join(out, "..data")); err != nil {
				t.Errorf("not laid out as in the pod: %v", err)
			}
			if tc.tokenFile != "" && (len(f.tokens) != 1 || f.tokens[0] != "local-sa-token-abc") {
				t.Errorf("provider got %d tokens, want the token file's", len(f.tokens))
			}
			if f.closed.Load() != 1 {
				t.Errorf("provider closed %d times", f.closed.Load())
			}
		})
	}
}

func TestFetchWatch(t *testing.T) {
	f := newFake("vault", map[string]string{"db-password": "watch-pw-00001", "api-token": "watch-tok-00001"})
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	stop := testenv.Background(t, "Fetch --watch", 2*time.Second, cancel, func() error {
		return Fetch(ctx, FetchOptions{
			Providers: provider.NewSet(f), SPCFile: seedVaultClass, OutDir: out,
			Watch: true, Interval: 50 * time.Millisecond, LogOutput: suiteLogs.Tee(t),
		})
	})
	eventually(t, 5*time.Second, "written", func() bool {
		b, _ := os.ReadFile(filepath.Join(out, "db-password"))
		return string(b) == "watch-pw-00001"
	})
	f.set("db-password", "watch-pw-00002")
	eventually(t, 2*time.Second, "rotated", func() bool {
		b, _ := os.ReadFile(filepath.Join(out, "db-password"))
		return string(b) == "watch-pw-00002"
	})
	stop() // the interrupt
}

func TestFetchUnknownProvider(t *testing.T) {
	err := Fetch(context.Background(), FetchOptions{
		Providers: provider.NewSet(newFake("aws", nil)), SPCFile: seedVaultClass, OutDir: t.TempDir(), LogOutput: suiteLogs.Tee(t),
	})
	if err == nil || !strings.Contains(err.Error(), "production/vault-secrets") || !strings.Contains(err.Error(), `"vault" is not available`) || !strings.Contains(err.Error(), "built-in providers: aws") {
		t.Errorf("err = %v", err)
	}
}
