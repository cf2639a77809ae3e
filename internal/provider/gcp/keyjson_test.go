package gcp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// serviceAccountKey generates a service-account key as the IAM API
// returns one (type service_account, PKCS#8 private key, token_uri
// Google's token endpoint) and registers its public key with the fake.
func serviceAccountKey(t *testing.T, f *fakeGCP, email string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.saKeys[email] = &k.PublicKey
	f.mu.Unlock()
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": projectID, "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
	})
	return string(b)
}

// TestKeyJSONFromNodePublishSecret: a class without parameters.auth whose
// volume has a nodePublishSecretRef with key.json authenticates with that
// key (a JWT signed with it, exchanged at the fake's OAuth 2.0 token
// endpoint), as the upstream provider does (auth/auth.go TokenSource,
// config/config.go Parse: key.json present and auth unset). With auth set
// and key.json present the fetch is refused, as upstream refuses it; a
// Secret without key.json leaves the pod's identity in use; a key of
// another type is refused. No error holds the key.
func TestKeyJSONFromNodePublishSecret(t *testing.T) {
	r := newRig(t)
	r.seed()
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	r.fake.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, r.fake, keyEmail)
	p := r.provider(true)
	c := r.class(map[string]string{"secrets": allSecrets})
	cloud := identity.Decide(c, identity.Sources{ServiceAccount: "app", NodePublishSecret: true}).Cloud
	if cloud.Credentials != identity.CredentialsNodePublishSecret {
		t.Fatalf("Decide = %+v", cloud)
	}
	req := r.request(c, cloud, nil)
	req.Secrets = map[string]string{KeyJSONKey: key}
	objs, err := p.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r.checkAll(objs)
	if n := r.fake.calls.Snapshot()["oauth2 jwt-bearer token"]; n != 1 {
		t.Errorf("jwt-bearer token requests = %d, want 1", n)
	}

	// A rotated key (another key of the account) is used at the next fetch.
	key2 := serviceAccountKey(t, r.fake, keyEmail)
	req.Secrets = map[string]string{KeyJSONKey: key2}
	if _, err := p.Fetch(context.Background(), req); err != nil {
		t.Fatalf("fetch with the rotated key: %v", err)
	}

	withAuth := r.class(map[string]string{"secrets": allSecrets, "auth": "pod-adc"})
	areq := r.request(withAuth, identity.Decide(withAuth, identity.Sources{NodePublishSecret: true}).Cloud, nil)
	areq.Secrets = req.Secrets
	_, err = p.Fetch(context.Background(), areq)
	if provider.ReasonOf(err) != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), "parameters.auth") {
		t.Fatalf("key.json with auth: %v, want InvalidConfig naming parameters.auth", err)
	}
	req.Secrets = map[string]string{KeyJSONKey: `{"type":"external_account","credential_source":{"file":"/etc/shadow"}}`}
	_, err = p.Fetch(context.Background(), req)
	if provider.ReasonOf(err) != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), `type "external_account"`) {
		t.Fatalf("external_account key: %v", err)
	}
	req.Secrets = map[string]string{KeyJSONKey: strings.Replace(key, `PRIVATE KEY-----\n`, `PRIVATE KEY-----\nAAAA`, 1)}
	_, err = p.Fetch(context.Background(), req)
	if err == nil {
		t.Fatal("a broken key fetched")
	}
	for _, bad := range []string{"BEGIN PRIVATE KEY", "AAAA"} {
		if strings.Contains(err.Error(), bad) {
			t.Fatalf("error quotes the key: %v", err)
		}
	}
}

// TestAgentFetchKeyJSON is the agent's loop with the key in a directory
// laid out as kubelet's Secret volume (the webhook mounts the pod's
// nodePublishSecretRef Secret there, into the agent only): `ssi-agent
// fetch --node-publish-secret-dir`.
func TestAgentFetchKeyJSON(t *testing.T) {
	r := newRig(t)
	r.seed()
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	r.fake.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, r.fake, keyEmail)
	dir := t.TempDir()
	spcFile := filepath.Join(dir, "spc.yaml")
	if err := os.WriteFile(spcFile, []byte(`apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: keyed, namespace: `+r.ns+`}
spec:
  provider: gcp
  parameters:
    secrets: |
      - resourceName: projects/my-project/secrets/db/versions/latest
        path: db.txt
`), 0o600); err != nil {
		t.Fatal(err)
	}
	secretDir := filepath.Join(dir, "secret")
	ts := filepath.Join(secretDir, "..2026_12_03_15_00_00.1")
	if err := os.MkdirAll(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, KeyJSONKey), []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(secretDir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/"+KeyJSONKey, filepath.Join(secretDir, KeyJSONKey)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	err := agent.Fetch(context.Background(), agent.FetchOptions{
		Providers: provider.NewSet(r.provider(true)), SPCFile: spcFile, OutDir: out,
		NodePublishSecretDir: secretDir, Timeout: 20 * time.Second, LogOutput: &strings.Builder{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "db.txt")); err != nil || string(b) != "s3cr3t-db-2" {
		t.Fatalf("db.txt = %q, %v", b, err)
	}
}
