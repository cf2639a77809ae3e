package azure

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

const (
	spClientID = "0b6f5c1e-7d7a-4e0b-9a2a-3c1d2e4f5a6b"
	spSecret1  = "sp-secret-one~value"
	spSecret2  = "sp-secret-two~value"
)

// TestServicePrincipalFromNodePublishSecret: a class without clientID whose
// volume has a nodePublishSecretRef authenticates with the Secret's
// clientid and clientsecret (matched in any case, as upstream's
// pkg/auth/auth.go getCredential does) at the fake Entra token endpoint
// with client credentials, and reads Key Vault with the token. A rotated
// Secret is used at the next fetch; a Secret without clientsecret fails
// naming the key, never a value.
func TestServicePrincipalFromNodePublishSecret(t *testing.T) {
	r := newRig(t)
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret1
	r.fake.access[spClientID] = true
	r.fake.mu.Unlock()
	r.fake.put("secrets", "db", kvVer{value: "sp-db-value"})
	c := r.class(map[string]string{"objects": objectsParam("objectName: db\nobjectType: secret")})
	cloud := identity.Decide(c, identity.Sources{ServiceAccount: "app", NodePublishSecret: true}).Cloud
	if cloud.Credentials != identity.CredentialsNodePublishSecret {
		t.Fatalf("Decide = %+v, want the nodePublishSecretRef credentials", cloud)
	}
	req := r.request(c)
	req.Identity.Cloud = cloud
	req.Identity.Tokens = nil // a service principal needs no pod token
	req.Secrets = map[string]string{"ClientID": spClientID, "clientSecret": spSecret1}
	objs, err := r.p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(filesByPath(objs)["db"]); got != "sp-db-value" {
		t.Fatalf("db = %q", got)
	}
	if n := r.fake.calls.Snapshot()["entra client secret"]; n != 1 {
		t.Errorf("client-secret token requests = %d, want 1", n)
	}

	// The Secret rotates: the old client secret no longer works.
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret2
	r.fake.mu.Unlock()
	req.Secrets = map[string]string{"clientid": spClientID, "clientsecret": spSecret2}
	if _, err := r.p.Fetch(context.Background(), req); err != nil {
		t.Fatalf("fetch with the rotated Secret: %v", err)
	}

	req.Secrets = map[string]string{"clientid": spClientID}
	_, err = r.p.Fetch(context.Background(), req)
	if provider.ReasonOf(err) != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), "no clientsecret key") {
		t.Fatalf("without clientsecret: %v, want InvalidConfig naming clientsecret", err)
	}
	req.Secrets = nil
	if _, err := r.p.Fetch(context.Background(), req); err == nil || !strings.Contains(err.Error(), "nodePublishSecretRef Secret is not available") {
		t.Fatalf("without the Secret: %v", err)
	}
	for _, v := range []string{spSecret1, spSecret2} {
		if err != nil && strings.Contains(err.Error(), v) {
			t.Fatalf("error holds the client secret: %v", err)
		}
	}
}

// TestAgentFetchServicePrincipal is `ssi-agent fetch
// --node-publish-secret-dir`: the agent's loop reads the directory (laid
// out as kubelet lays out the Secret volume the webhook mounts into the
// agent: keys as links into ..data) and fetches with the service
// principal.
func TestAgentFetchServicePrincipal(t *testing.T) {
	r := newRig(t)
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret1
	r.fake.access[spClientID] = true
	r.fake.mu.Unlock()
	r.fake.put("secrets", "db", kvVer{value: "agent-sp-value"})
	dir := t.TempDir()
	spcFile := filepath.Join(dir, "spc.yaml")
	writeFile(t, spcFile, `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: sp, namespace: `+r.ns+`}
spec:
  provider: azure
  parameters:
    keyvaultName: kv-test
    tenantId: `+r.fake.tenant+`
    objects: |
      array:
        - |
          objectName: db
          objectType: secret
`)
	secretDir := t.TempDir()
	providertest.WriteSecretDir(t, secretDir, map[string]string{"clientid": spClientID, "clientsecret": spSecret1})
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	err := agent.Fetch(context.Background(), agent.FetchOptions{
		Providers: provider.NewSet(r.p), SPCFile: spcFile, OutDir: out,
		NodePublishSecretDir: secretDir, Timeout: 20 * time.Second, LogOutput: &strings.Builder{},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "db"))
	if err != nil || string(b) != "agent-sp-value" {
		t.Fatalf("db = %q, %v", b, err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
