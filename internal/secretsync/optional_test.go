package secretsync

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// Optional objects in the sync controller, against a real Vault: a
// secretObjects data entry whose object is optional and missing is left
// out of the synced Secret (the other keys sync), the key appears when the
// secret is written and goes again when it is deleted.
func TestVaultSyncOptionalObject(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "vault-optional")
	serviceAccount(t, env, ns, "app", nil)
	v := testenv.StartVault(t, testenv.VaultOptions{})
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "opt", `path "secret/data/opt/*" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "app", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"opt"}, Audience: "vault"})
	v.PutKV2(t, "secret", "opt/db", map[string]any{"password": "pw-1"})
	startController(t, env, nil, Options{Providers: vaultProvider(t), RotationInterval: 300 * time.Millisecond}, nil)

	class := classYAML(t, ns, fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: optional-sync
  annotations:
    %s: maybe
spec:
  provider: vault
  parameters:
    vaultAddress: %q
    roleName: app
    audience: vault
    objects: |
      - {objectName: db, secretPath: secret/data/opt/db, secretKey: password}
      - {objectName: maybe, secretPath: secret/data/opt/maybe, secretKey: token}
  secretObjects:
  - secretName: optional-creds
    type: Opaque
    data:
    - {objectName: db, key: password}
    - {objectName: maybe, key: token}
`, spc.AnnotationOptionalObjects, v.Addr))
	create(t, env, class)
	create(t, env, csiPod(ns, "web-0", "app", class.Name))
	keys := func(want ...string) func(*corev1.Secret) string {
		return func(s *corev1.Secret) string {
			if got := strings.Join(sortedKeys(s.Data), ","); got != strings.Join(want, ",") {
				return "keys " + got
			}
			return ""
		}
	}
	s := waitSecret(t, env, ns, "optional-creds", keys("password"))
	if string(s.Data["password"]) != "pw-1" {
		t.Errorf("password %q", s.Data["password"])
	}

	v.PutKV2(t, "secret", "opt/maybe", map[string]any{"token": "tok-1"})
	s = waitSecret(t, env, ns, "optional-creds", keys("password", "token"))
	if string(s.Data["token"]) != "tok-1" {
		t.Errorf("token %q", s.Data["token"])
	}

	if err := v.Client.KVv2("secret").DeleteMetadata(context.Background(), "opt/maybe"); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "optional-creds", keys("password"))
	for _, e := range classEvents(env, ns, class.Name) {
		if e.Reason == ReasonFetchFailed {
			t.Errorf("event %s: %s while only an optional object was missing", e.Reason, e.Message)
		}
	}
}

// A kubernetes.io/tls Secret needs both keys: while its optional
// certificate is missing it is not written (and keeps what it holds).
func TestBuildSecretOptional(t *testing.T) {
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}}
	absent := map[string]bool{"maybe": true}
	opaque := secretSpec{name: "s", typ: corev1.SecretTypeOpaque, items: []item{{objectName: "db", key: "password"}, {objectName: "maybe", key: "token"}}}
	sec, msgs := buildSecret(class, opaque, map[string][]byte{"db": []byte("pw")}, absent, nil)
	if len(msgs) != 0 || sec == nil || strings.Join(sortedKeys(sec.Data), ",") != "password" {
		t.Fatalf("opaque: %v %v, want only key password", sec, msgs)
	}
	tls := secretSpec{name: "t", typ: corev1.SecretTypeTLS, items: []item{{objectName: "maybe", key: "tls.crt"}, {objectName: "maybe", key: "tls.key"}}}
	if sec, msgs := buildSecret(class, tls, map[string][]byte{}, absent, nil); sec != nil || len(msgs) != 0 {
		t.Fatalf("tls with its object missing: %v %v, want no Secret and no message", sec, msgs)
	}
	// A required object's missing file is not silently dropped.
	required := secretSpec{name: "r", typ: corev1.SecretTypeOpaque, items: []item{{objectName: "db", key: "password"}}}
	if sec, _ := buildSecret(class, required, map[string][]byte{}, absent, nil); sec == nil {
		t.Fatal("required: no Secret")
	} else if _, ok := sec.Data["password"]; !ok {
		t.Error("the key of a required object was dropped")
	}
}

// A template that reads a missing optional object is not rendered, and a
// secretObjects key taken from its file is left out as the key of a
// missing optional object is: not written empty to an Opaque Secret, and
// no kubernetes.io/tls Secret (no InvalidSecretObject event at every
// reconcile) until the object exists.
func TestSyncSkippedTemplateKey(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "skipped-template")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw-1"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake), RotationInterval: 300 * time.Millisecond}, nil)

	class := classYAML(t, ns, fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: skipped
  annotations:
    %s: maybe
    %s: |
      - {path: token.env, template: 'TOKEN={{ object "maybe" }}'}
      - {path: bundle.pem, template: '{{ object "maybe" }}'}
spec:
  provider: vault
  parameters:
    roleName: app
    vaultAddress: http://127.0.0.1:1
    objects: |
      - {objectName: db-password, secretPath: secret/data/db, secretKey: password}
      - {objectName: maybe, secretPath: secret/data/maybe, secretKey: bundle}
  secretObjects:
  - secretName: app
    type: Opaque
    data:
    - {objectName: db-password, key: password}
    - {objectName: token.env, key: token}
  - secretName: cert
    type: kubernetes.io/tls
    data:
    - {objectName: bundle.pem, key: tls.crt}
    - {objectName: bundle.pem, key: tls.key}
`, spc.AnnotationOptionalObjects, render.Annotation))
	create(t, env, class)
	create(t, env, csiPod(ns, "web-0", "app", class.Name))
	keys := func(want ...string) func(*corev1.Secret) string {
		return func(s *corev1.Secret) string {
			if got := strings.Join(sortedKeys(s.Data), ","); got != strings.Join(want, ",") {
				return "keys " + got
			}
			return ""
		}
	}
	waitSecret(t, env, ns, "app", keys("password"))
	eventually(t, 20*time.Second, "three rotations", func() (bool, string) {
		n := len(fake.callsIn(ns))
		return n >= 4, fmt.Sprintf("%d fetches", n)
	})
	if s, err := getSecret(env, ns, "app"); err != nil || strings.Join(sortedKeys(s.Data), ",") != "password" {
		t.Errorf("Secret app while the template's object is missing: %v %v, want only key password", s, err)
	}
	if _, err := getSecret(env, ns, "cert"); !apierrors.IsNotFound(err) {
		t.Errorf("Secret cert while its template's object is missing: %v, want none", err)
	}
	for _, e := range classEvents(env, ns, class.Name) {
		if e.Type == corev1.EventTypeWarning {
			t.Errorf("event %s: %s while only an optional object was missing", e.Reason, e.Message)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM := testCert(t, key, &key.PublicKey, "app")
	fake.set("maybe", string(certPEM)+string(pemOf(pemECPrivateKey, der)))
	s := waitSecret(t, env, ns, "app", keys("password", "token"))
	if !strings.HasPrefix(string(s.Data["token"]), "TOKEN=-----BEGIN CERTIFICATE") {
		t.Errorf("token %q, want the rendered template", s.Data["token"])
	}
	s = waitSecret(t, env, ns, "cert", keys("tls.crt", "tls.key"))
	if string(s.Data["tls.crt"]) != string(certPEM) {
		t.Errorf("tls.crt %q, want the certificate", s.Data["tls.crt"])
	}
}

// Making an optional object required is an annotation edit, which does
// not change the class's generation: it fetches at once (not at the next
// rotation, an hour away here), and the missing object fails the fetch
// naming it while the Secret keeps what it held.
func TestSyncOptionalMadeRequired(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "made-required")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw-1"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake), RotationInterval: time.Hour}, nil)

	class := classYAML(t, ns, fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: made-required
  annotations:
    %s: maybe
spec:
  provider: vault
  parameters:
    roleName: app
    vaultAddress: http://127.0.0.1:1
    objects: |
      - {objectName: db-password, secretPath: secret/data/db, secretKey: password}
      - {objectName: maybe, secretPath: secret/data/maybe, secretKey: token}
  secretObjects:
  - secretName: app
    type: Opaque
    data:
    - {objectName: db-password, key: password}
    - {objectName: maybe, key: token}
`, spc.AnnotationOptionalObjects))
	create(t, env, class)
	create(t, env, csiPod(ns, "web-0", "app", class.Name))
	first := waitSecret(t, env, ns, "app", func(s *corev1.Secret) string {
		if got := strings.Join(sortedKeys(s.Data), ","); got != "password" {
			return "keys " + got
		}
		return ""
	})

	var cur ssiv1.SecretProviderClass
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(class), &cur); err != nil {
		t.Fatal(err)
	}
	delete(cur.Annotations, spc.AnnotationOptionalObjects)
	if err := env.Client.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env, ns, class.Name, ReasonFetchFailed, `object "maybe"`, "NotFound")
	if s, err := getSecret(env, ns, "app"); err != nil || s.ResourceVersion != first.ResourceVersion {
		t.Errorf("Secret app after the failed fetch: %v, want it unchanged (resourceVersion %s)", err, first.ResourceVersion)
	}
}
