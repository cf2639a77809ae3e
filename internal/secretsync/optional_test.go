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

// A Secret whose type requires a key (requiredKeys) is not written while
// every declared key of such an entry comes from a missing optional
// object, and says so naming the type, the key and the object; otherwise
// the missing optional keys are left out and the rest is written. The
// API server is the reference: the Secret with the missing keys left out
// is created (dry run), and must be refused exactly when buildSecret
// holds it back.
func TestBuildSecretOptional(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "build-optional")
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}}
	absent := map[string]bool{"maybe": true, "maybe2": true}
	files := map[string][]byte{"db": []byte("pw"), "cfg": []byte(`{"auths":{}}`), "ssh": []byte("k")}
	items := func(kv ...string) []item {
		var out []item
		for i := 0; i < len(kv); i += 2 {
			out = append(out, item{key: kv[i], objectName: kv[i+1]})
		}
		return out
	}
	cases := map[string]struct {
		typ   corev1.SecretType
		items []item
		keys  string // of the Secret written
		held  []string
	}{
		"opaque: the optional key is left out":                    {typ: corev1.SecretTypeOpaque, items: items("password", "db", "token", "maybe"), keys: "password"},
		"opaque: a required object's missing file is not dropped": {typ: corev1.SecretTypeOpaque, items: items("password", "nope"), keys: "password"},
		"tls: certificate missing": {typ: corev1.SecretTypeTLS, items: items("tls.crt", "maybe", "tls.key", "maybe"),
			held: []string{`Secret "s"`, "type kubernetes.io/tls requires key tls.crt and tls.key", `tls.crt from "maybe", tls.key from "maybe"`}},
		"dockerconfigjson": {typ: corev1.SecretTypeDockerConfigJson, items: items(".dockerconfigjson", "maybe", "note", "db"),
			held: []string{"type kubernetes.io/dockerconfigjson requires key .dockerconfigjson", `.dockerconfigjson from "maybe"`}},
		"dockerconfigjson present, an extra key missing": {typ: corev1.SecretTypeDockerConfigJson, items: items(".dockerconfigjson", "cfg", "note", "maybe"), keys: ".dockerconfigjson"},
		"dockercfg": {typ: corev1.SecretTypeDockercfg, items: items(".dockercfg", "maybe"),
			held: []string{"type kubernetes.io/dockercfg requires key .dockercfg", `.dockercfg from "maybe"`}},
		"ssh-auth": {typ: corev1.SecretTypeSSHAuth, items: items("ssh-privatekey", "maybe", "ssh-publickey", "ssh"),
			held: []string{"type kubernetes.io/ssh-auth requires key ssh-privatekey", `ssh-privatekey from "maybe"`}},
		"basic-auth: both missing": {typ: corev1.SecretTypeBasicAuth, items: items("username", "maybe", "password", "maybe2"),
			held: []string{"type kubernetes.io/basic-auth requires key username or password", `username from "maybe", password from "maybe2"`}},
		"basic-auth: one of the two is enough": {typ: corev1.SecretTypeBasicAuth, items: items("username", "maybe", "password", "db"), keys: "password"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec := secretSpec{name: "s", typ: tc.typ, items: tc.items}
			sec, msgs, held := buildSecret(class, spec, files, absent, nil)
			if len(msgs) != 0 {
				t.Fatalf("problems %q", msgs)
			}
			naive := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s"}, Type: tc.typ, Data: map[string][]byte{}}
			for _, it := range tc.items {
				if c, ok := files[it.objectName]; ok || !absent[it.objectName] {
					naive.Data[it.key] = c
				}
			}
			err := env.Client.Create(context.Background(), naive, client.DryRunAll)
			if refused := apierrors.IsInvalid(err); refused != (tc.held != nil) {
				t.Errorf("the API server's answer to the Secret without the missing keys: %v; held back %v", err, tc.held != nil)
			}
			if tc.held != nil {
				if sec != nil || held == "" {
					t.Fatalf("got Secret %v (held %q), want none", sec, held)
				}
				for _, f := range append(tc.held, "keeps what it held") {
					if !strings.Contains(held, f) {
						t.Errorf("held %q lacks %q", held, f)
					}
				}
				return
			}
			if sec == nil || held != "" {
				t.Fatalf("no Secret (held %q)", held)
			}
			if got := strings.Join(sortedKeys(sec.Data), ","); got != tc.keys {
				t.Errorf("keys %s, want %s", got, tc.keys)
			}
		})
	}
}

// A template that reads a missing optional object is not rendered, and a
// secretObjects key taken from its file is left out as the key of a
// missing optional object is: not written empty to an Opaque Secret, and
// no kubernetes.io/tls Secret (no InvalidSecretObject event at every
// reconcile, one SecretIncomplete event) until the object exists.
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
	incomplete := 0
	for _, e := range classEvents(env, ns, class.Name) {
		if e.Type == corev1.EventTypeWarning {
			t.Errorf("event %s: %s while only an optional object was missing", e.Reason, e.Message)
		}
		if e.Reason == ReasonSecretIncomplete {
			incomplete += int(e.Count)
			for _, f := range []string{`Secret "cert"`, "type kubernetes.io/tls requires key tls.crt and tls.key", `tls.crt from "bundle.pem"`, "keeps what it held"} {
				if !strings.Contains(e.Message, f) {
					t.Errorf("event %s: %q lacks %q", e.Reason, e.Message, f)
				}
			}
		}
	}
	if incomplete != 1 {
		t.Errorf("%d %s events over four syncs, want one", incomplete, ReasonSecretIncomplete)
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
