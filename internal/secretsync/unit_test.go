package secretsync

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/yaml"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func secretObjects(t *testing.T, doc string) []*ssiv1.SecretObject {
	t.Helper()
	var out []*ssiv1.SecretObject
	if err := yaml.UnmarshalStrict([]byte(doc), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseSecretObjects(t *testing.T) {
	cases := map[string]struct {
		doc      string
		names    []string // valid Secrets
		problems []string
	}{
		"upstream example": {
			doc: `
- secretName: database-credentials
  type: Opaque
  data:
  - {objectName: database-creds, key: credentials}`,
			names: []string{"database-credentials"},
		},
		"names and keys are trimmed": {
			doc: `
- secretName: " db "
  type: " Opaque "
  data:
  - {objectName: " a ", key: " k "}`,
			names: []string{"db"},
		},
		"empty secretName, type and data": {
			doc:      `- {}`,
			problems: []string{"secretObjects[0]: secretName is empty", "secretObjects[0]: type is empty; set it, for example to Opaque or kubernetes.io/tls", "secretObjects[0]: data is empty; list at least one objectName and key"},
		},
		"empty objectName and key": {
			doc: `
- secretName: s
  type: Opaque
  data:
  - {key: k}
  - {objectName: a}`,
			problems: []string{`secretObjects[0] (Secret "s"): data[0].objectName is empty; name an object of the class`, `secretObjects[0] (Secret "s"): data[1].key is empty; name the key of the Secret`},
		},
		"duplicate key": {
			doc: `
- secretName: s
  type: Opaque
  data:
  - {objectName: a, key: k}
  - {objectName: b, key: k}`,
			problems: []string{`secretObjects[0] (Secret "s"): data[1].key "k" is already used by data[0]; each key of a Secret must be unique`},
		},
		"invalid names": {
			doc: `
- secretName: Not_Valid
  type: Opaque
  data:
  - {objectName: a, key: "a/b"}`,
			problems: []string{
				`secretObjects[0] (Secret "Not_Valid"): secretName is not a valid Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
				`secretObjects[0] (Secret "Not_Valid"): data[0].key "a/b" is not a valid Secret key: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
			},
		},
		"tls keys": {
			doc: `
- secretName: t
  type: kubernetes.io/tls
  data:
  - {objectName: a, key: tls.crt}
  - {objectName: a, key: ca.crt}
- secretName: u
  type: kubernetes.io/tls
  data:
  - {objectName: a, key: tls.crt}`,
			problems: []string{
				`secretObjects[0] (Secret "t"): data[1].key "ca.crt" is not supported for type kubernetes.io/tls: only tls.crt and tls.key are`,
				`secretObjects[1] (Secret "u"): type kubernetes.io/tls needs a data entry with key tls.key`,
			},
		},
		"duplicate Secret: neither synced": {
			doc: `
- secretName: s
  type: Opaque
  data: [{objectName: a, key: k}]
- secretName: other
  type: Opaque
  data: [{objectName: a, key: k}]
- secretName: s
  type: Opaque
  data: [{objectName: b, key: k}]`,
			names:    []string{"other"},
			problems: []string{`secretObjects[2]: Secret "s" is already declared by secretObjects[0]; declare each Secret once`},
		},
		"labels, annotations and the reserved annotation": {
			doc: `
- secretName: s
  type: Opaque
  labels: {"bad label": x}
  annotations: {"secrets-store-injector.io/synced-from": other}
  data: [{objectName: a, key: k}]`,
			problems: []string{
				`secretObjects[0] (Secret "s"): labels: Invalid value: "bad label": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`secretObjects[0] (Secret "s"): annotations: secrets-store-injector.io/synced-from is set by the sync controller and cannot be declared`,
			},
		},
		// Kubernetes fills these two types with credentials of its own
		// (a non-expiring service-account token, a bootstrap token).
		"token types and custom types are refused": {
			doc: `
- secretName: legacy-token
  type: kubernetes.io/service-account-token
  annotations: {kubernetes.io/service-account.name: default}
  data: [{objectName: a, key: k}]
- secretName: bootstrap-token-abcdef
  type: bootstrap.kubernetes.io/token
  data: [{objectName: a, key: token-id}]
- secretName: custom
  type: example.com/custom
  data: [{objectName: a, key: k}]
- secretName: adopted
  type: Opaque
  annotations: {"secrets-store-injector.io/adopt": other}
  data: [{objectName: a, key: k}]`,
			problems: []string{
				`secretObjects[0] (Secret "legacy-token"): type "kubernetes.io/service-account-token" is not a type the sync controller writes (allowed: Opaque, kubernetes.io/basic-auth, kubernetes.io/dockercfg, kubernetes.io/dockerconfigjson, kubernetes.io/ssh-auth, kubernetes.io/tls)`,
				`secretObjects[1] (Secret "bootstrap-token-abcdef"): type "bootstrap.kubernetes.io/token" is not a type the sync controller writes (allowed: Opaque, kubernetes.io/basic-auth, kubernetes.io/dockercfg, kubernetes.io/dockerconfigjson, kubernetes.io/ssh-auth, kubernetes.io/tls)`,
				`secretObjects[2] (Secret "custom"): type "example.com/custom" is not a type the sync controller writes (allowed: Opaque, kubernetes.io/basic-auth, kubernetes.io/dockercfg, kubernetes.io/dockerconfigjson, kubernetes.io/ssh-auth, kubernetes.io/tls)`,
				`secretObjects[3] (Secret "adopted"): annotations: secrets-store-injector.io/adopt is set by the sync controller and cannot be declared`,
			},
		},
		"a key the type requires is declared (requiredKeys)": {
			doc: `
- {secretName: b, type: kubernetes.io/basic-auth, data: [{objectName: a, key: user}]}
- {secretName: c, type: kubernetes.io/dockercfg, data: [{objectName: a, key: config}]}
- {secretName: d, type: kubernetes.io/dockerconfigjson, data: [{objectName: a, key: config}]}
- {secretName: e, type: kubernetes.io/ssh-auth, data: [{objectName: a, key: ssh-publickey}]}
- {secretName: f, type: kubernetes.io/basic-auth, data: [{objectName: a, key: password}]}`,
			names: []string{"f"},
			problems: []string{
				`secretObjects[0] (Secret "b"): type kubernetes.io/basic-auth needs a data entry with key username or password`,
				`secretObjects[1] (Secret "c"): type kubernetes.io/dockercfg needs a data entry with key .dockercfg`,
				`secretObjects[2] (Secret "d"): type kubernetes.io/dockerconfigjson needs a data entry with key .dockerconfigjson`,
				`secretObjects[3] (Secret "e"): type kubernetes.io/ssh-auth needs a data entry with key ssh-privatekey`,
			},
		},
		"every allowed type": {
			doc: `
- {secretName: a, type: Opaque, data: [{objectName: a, key: k}]}
- {secretName: b, type: kubernetes.io/basic-auth, data: [{objectName: a, key: username}]}
- {secretName: c, type: kubernetes.io/dockercfg, data: [{objectName: a, key: .dockercfg}]}
- {secretName: d, type: kubernetes.io/dockerconfigjson, data: [{objectName: a, key: .dockerconfigjson}]}
- {secretName: e, type: kubernetes.io/ssh-auth, data: [{objectName: a, key: ssh-privatekey}]}
- {secretName: f, type: kubernetes.io/tls, data: [{objectName: a, key: tls.crt}, {objectName: a, key: tls.key}]}`,
			names: []string{"a", "b", "c", "d", "e", "f"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			specs, problems := parseSecretObjects(secretObjects(t, tc.doc))
			var names, msgs []string
			for _, s := range specs {
				names = append(names, s.name)
			}
			msgs = append(msgs, problems...)
			if !reflect.DeepEqual(names, tc.names) {
				t.Errorf("valid %q, want %q", names, tc.names)
			}
			if !reflect.DeepEqual(msgs, tc.problems) {
				t.Errorf("problems\n got: %q\nwant: %q", msgs, tc.problems)
			}
		})
	}
	t.Run("items", func(t *testing.T) {
		specs, _ := parseSecretObjects(secretObjects(t, `
- secretName: " db "
  type: Opaque
  labels: {a: b}
  data:
  - {objectName: " x ", key: " k "}`))
		want := secretSpec{name: "db", typ: corev1.SecretTypeOpaque, labels: map[string]string{"a": "b"}, items: []item{{objectName: "x", key: "k"}}}
		if len(specs) != 1 || !reflect.DeepEqual(specs[0], want) {
			t.Errorf("got %+v, want %+v", specs, want)
		}
	})
}

func TestCheckObjects(t *testing.T) {
	azure, err := spc.ParseSpec("ns", "kv", "azure", map[string]string{
		"keyvaultName": "kv-test", "tenantId": "t", "clientID": "c",
		"objects": "array:\n  - |\n    objectName: cert\n    objectType: secret\n    objectVersionHistory: 3\n  - |\n    objectName: db\n    objectType: secret\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	have, known := classFiles(azure, nil)
	cases := map[string]struct {
		object string
		ok     bool
	}{
		"plain object":            {"db", true},
		"version history entry":   {"cert/0", true},
		"version history dir":     {"cert", false},
		"not a number":            {"cert/latest", false},
		"unknown":                 {"nope", false},
		"prefix of another entry": {"d", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := secretSpec{index: 2, name: "s", items: []item{{objectName: tc.object, key: "k"}}}
			errs := checkObjects(s, azure, have, known)
			if tc.ok != (len(errs) == 0) {
				t.Fatalf("errors %q, want ok=%v", errs, tc.ok)
			}
			if !tc.ok {
				want := `secretObjects[2] (Secret "s"): data[0].objectName "` + tc.object + `" is not an object of SecretProviderClass ns/kv (its objects are "cert", "db")`
				if errs[0] != want {
					t.Errorf("got  %s\nwant %s", errs[0], want)
				}
			}
		})
	}
}

// testCert returns a self-signed certificate for key, PEM encoded.
func testCert(t testing.TB, key any, pub any, cn string) (*x509.Certificate, []byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestTLSValue(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, ecCertPEM := testCert(t, ecKey, &ecKey.PublicKey, "leaf")
	_, caPEM := testCert(t, rsaKey, &rsaKey.PublicKey, "ca")
	ecSEC1, _ := x509.MarshalECPrivateKey(ecKey)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(edKey)
	wantEC := pemOf("EC PRIVATE KEY", ecSEC1)
	wantRSA := pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))
	pfx, err := pkcs12.Legacy.Encode(ecKey, ecCert, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	pfxPassword, err := pkcs12.Modern.Encode(ecKey, ecCert, nil, "secret")
	if err != nil {
		t.Fatal(err)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	cases := map[string]struct {
		key     string
		content []byte
		want    []byte
		err     string
	}{
		"crt: certificates in order, keys dropped": {key: "tls.crt", content: cat(ecCertPEM, pemOf("PRIVATE KEY", ecPKCS8), caPEM), want: cat(ecCertPEM, caPEM)},
		"key: PKCS#8 EC becomes SEC1":              {key: "tls.key", content: cat(ecCertPEM, pemOf("PRIVATE KEY", ecPKCS8)), want: wantEC},
		"key: SEC1 EC stays SEC1":                  {key: "tls.key", content: cat(pemOf("EC PRIVATE KEY", ecSEC1), ecCertPEM), want: wantEC},
		"key: PKCS#8 RSA becomes PKCS#1":           {key: "tls.key", content: cat(pemOf("PRIVATE KEY", rsaPKCS8), caPEM), want: wantRSA},
		"key: PKCS#1 RSA stays":                    {key: "tls.key", content: wantRSA, want: wantRSA},
		"key: the last key block wins":             {key: "tls.key", content: cat(pemOf("PRIVATE KEY", rsaPKCS8), pemOf("PRIVATE KEY", ecPKCS8)), want: wantEC},
		"key: ed25519 is refused":                  {key: "tls.key", content: pemOf("PRIVATE KEY", edPKCS8), err: "private key of type ed25519.PrivateKey is not supported: only RSA and ECDSA keys are"},
		"key: unparseable DER is refused":          {key: "tls.key", content: pemOf("PRIVATE KEY", []byte("not der")), err: `PEM block "PRIVATE KEY": the private key is neither PKCS#1, SEC1 nor PKCS#8 DER`},
		"crt: PKCS#12 without password":            {key: "tls.crt", content: pfx, want: ecCertPEM},
		"key: PKCS#12 without password":            {key: "tls.key", content: pfx, want: wantEC},
		"crt: PKCS#12 with a password":             {key: "tls.crt", content: pfxPassword, err: "no PEM CERTIFICATE block, and not a PKCS#12 bundle without password (it needs a password)"},
		"crt: neither PEM nor PKCS#12":             {key: "tls.crt", content: []byte("s3cr3t-value"), err: "no PEM CERTIFICATE block, and not a PKCS#12 bundle without password (it is not valid PKCS#12)"},
		"key: neither PEM nor PKCS#12":             {key: "tls.key", content: []byte("s3cr3t-value"), err: "no PEM private key block, and not a PKCS#12 bundle without password (it is not valid PKCS#12)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tlsValue(tc.key, tc.content)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error quotes content")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestPodClassesAndTrim(t *testing.T) {
	cfg := agentconfig.Config{Mode: agentconfig.ModeSidecar, Volumes: []agentconfig.Volume{
		{Name: "a", Path: "/a", Class: agentconfig.Class{Namespace: "other", Name: "injected-1", Provider: "vault", Parameters: map[string]string{"roleName": "r"}}},
		{Name: "b", Path: "/b", Class: agentconfig.Class{Namespace: "other", Name: " injected-2 ", Provider: "aws"}},
	}}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	csi := func(name, driver, class string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: driver, VolumeAttributes: map[string]string{inject.ClassAttribute: class, "other": "x"}}}}
	}
	agent := corev1.Container{Name: "ssi-agent", Image: "agent", Env: []corev1.EnvVar{{Name: "X", Value: "y"}, {Name: agentconfig.EnvConfig, Value: enc}}}
	injected := map[string]string{inject.AnnotationStatus: inject.StatusInjected, "unrelated": "dropped"}
	cases := map[string]struct {
		pod  corev1.Pod
		want []string
	}{
		"csi volumes of the driver": {
			pod: corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
				csi("v1", inject.CSIDriver, "b"), csi("v2", inject.CSIDriver, " a "), csi("v3", "other.csi.k8s.io", "c"), csi("v4", inject.CSIDriver, ""), csi("v5", inject.CSIDriver, "b"),
				{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			}}},
			want: []string{"a", "b"},
		},
		"rewritten pod, native sidecar": {
			pod:  corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: injected}, Spec: corev1.PodSpec{InitContainers: []corev1.Container{agent}}},
			want: []string{"injected-1", "injected-2"},
		},
		"rewritten pod, legacy shape and a plugin volume left in place": {
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: injected}, Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{agent}, Containers: []corev1.Container{{Name: "app"}, agent},
				Volumes: []corev1.Volume{csi("plugin", inject.CSIDriver, "plugin-class")}}},
			want: []string{"injected-1", "injected-2", "plugin-class"},
		},
		"agent configuration without the status annotation is ignored": {
			pod:  corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{agent}}},
			want: []string{},
		},
		"malformed agent configuration": {
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: injected}, Spec: corev1.PodSpec{InitContainers: []corev1.Container{
				{Name: "ssi-agent", Env: []corev1.EnvVar{{Name: agentconfig.EnvConfig, Value: "{not json"}}}}}},
			want: []string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := PodClasses(&tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PodClasses = %q, want %q", got, tc.want)
			}
			trimmed := TrimPod(&tc.pod)
			if got := PodClasses(trimmed); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PodClasses(TrimPod) = %q, want %q", got, tc.want)
			}
			if again := TrimPod(trimmed); !reflect.DeepEqual(again, trimmed) {
				t.Errorf("TrimPod is not idempotent:\n%+v\n%+v", again, trimmed)
			}
			if _, ok := trimmed.Annotations["unrelated"]; ok {
				t.Errorf("unrelated annotation kept")
			}
			for _, c := range append(trimmed.Spec.InitContainers, trimmed.Spec.Containers...) {
				for _, e := range c.Env {
					if strings.Contains(e.Value, "roleName") || e.Name != agentconfig.EnvConfig {
						t.Errorf("trimmed pod keeps env %s=%s", e.Name, e.Value)
					}
				}
			}
		})
	}
	t.Run("kept fields", func(t *testing.T) {
		now := metav1.Now()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u", ResourceVersion: "7", CreationTimestamp: now, DeletionTimestamp: &now,
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", UID: "r"}},
				Annotations:     map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: "projects/1/x"}, Labels: map[string]string{"l": "v"}},
			Spec:   corev1.PodSpec{ServiceAccountName: "sa", NodeName: "n", Containers: []corev1.Container{{Name: "app", Image: "i"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
		}
		got := TrimPod(p)
		want := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u", ResourceVersion: "7", CreationTimestamp: now, DeletionTimestamp: &now,
				OwnerReferences: p.OwnerReferences, Annotations: p.Annotations},
			Spec:   corev1.PodSpec{ServiceAccountName: "sa", NodeName: "n"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
}

func TestLive(t *testing.T) {
	now := metav1.Now()
	cases := map[string]struct {
		pod  corev1.Pod
		live bool
	}{
		"pending":   {corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, true},
		"no phase":  {corev1.Pod{}, true},
		"running":   {corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, true},
		"succeeded": {corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false},
		"failed":    {corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, false},
		"deleting":  {corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Live(&tc.pod); got != tc.live {
				t.Errorf("Live = %v", got)
			}
		})
	}
}

func TestOwnerReferences(t *testing.T) {
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Name: "c", UID: "cu"}}
	pod := func(name string, uid types.UID, owners ...metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid, OwnerReferences: owners}}
	}
	t2 := true
	rs := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rsu", Controller: &t2, BlockOwnerDeletion: &t2}
	job := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "ju"}
	cases := map[string]struct {
		consumers []consumer
		want      []string
	}{
		"bare pod":              {[]consumer{{pod: pod("p", "pu")}}, []string{"v1/Pod/p/pu"}},
		"owned pods share one":  {[]consumer{{pod: pod("a", "au", rs)}, {pod: pod("b", "bu", rs)}}, []string{"apps/v1/ReplicaSet/rs/rsu"}},
		"mixed, sorted":         {[]consumer{{pod: pod("z", "zu", rs)}, {pod: pod("p", "pu")}, {pod: pod("j", "jpu", job)}}, []string{"batch/v1/Job/j/ju", "v1/Pod/p/pu", "apps/v1/ReplicaSet/rs/rsu"}},
		"pod-less: the class":   {[]consumer{{serviceAccount: "robot"}}, []string{"secrets-store.csi.x-k8s.io/v1/SecretProviderClass/c/cu"}},
		"pod and pod-less both": {[]consumer{{pod: pod("p", "pu")}, {serviceAccount: "robot"}}, []string{"v1/Pod/p/pu", "secrets-store.csi.x-k8s.io/v1/SecretProviderClass/c/cu"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, o := range ownerReferences(class, tc.consumers) {
				if o.Controller != nil || o.BlockOwnerDeletion != nil {
					t.Errorf("owner %s carries controller/blockOwnerDeletion", o.Name)
				}
				got = append(got, o.APIVersion+"/"+o.Kind+"/"+o.Name+"/"+string(o.UID))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEqualSecretAndDiff(t *testing.T) {
	base := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "1"}, Annotations: map[string]string{"b": "2"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "p", UID: "u"}}},
			Data: map[string][]byte{"k": []byte("v"), "l": []byte("w")},
		}
	}
	cases := map[string]struct {
		change func(*corev1.Secret)
		diff   string
	}{
		"equal":             {func(*corev1.Secret) {}, ""},
		"value":             {func(s *corev1.Secret) { s.Data["k"] = []byte("v2") }, "data keys k"},
		"key removed":       {func(s *corev1.Secret) { delete(s.Data, "l") }, "data keys l"},
		"label":             {func(s *corev1.Secret) { s.Labels["x"] = "y" }, "labels"},
		"annotation":        {func(s *corev1.Secret) { s.Annotations["b"] = "3" }, "annotations"},
		"owner":             {func(s *corev1.Secret) { s.OwnerReferences[0].UID = "u2" }, "owner references"},
		"owner flags":       {func(s *corev1.Secret) { s.OwnerReferences[0].Controller = new(bool) }, "owner references"},
		"value and a label": {func(s *corev1.Secret) { s.Data["l"] = nil; s.Labels = nil }, "data keys l, labels"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cur, want := base(), base()
			tc.change(cur)
			if eq := equalSecret(cur, want); eq != (tc.diff == "") {
				t.Errorf("equalSecret = %v", eq)
			}
			if got := diffSummary(cur, want); got != tc.diff {
				t.Errorf("diff %q, want %q", got, tc.diff)
			}
		})
	}
}

// The RBAC manifest in the tree is what the generator writes (make verify
// regenerates it too).
func TestRBACManifestUpToDate(t *testing.T) {
	want, err := RBACYAML(RBACOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", "sync", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("manifests/sync/rbac.yaml is stale: run make manifests")
	}
}

// TestPodChangedIgnoresHeartbeats: an update that changes only the pod's
// status does not enqueue, also for a pod whose owner reference sets the
// *bool fields (as every ReplicaSet's pods do) and whose two versions were
// decoded separately; a changed owner, class or service account does.
func TestPodChangedIgnoresHeartbeats(t *testing.T) {
	pod := func(owner string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns", OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner, UID: "uid-rs", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}}},
			Spec: corev1.PodSpec{ServiceAccountName: "app", Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: inject.CSIDriver, VolumeAttributes: map[string]string{inject.ClassAttribute: "db"},
			}}}}},
		}
	}
	pred := podChanged()
	update := func(o, n *corev1.Pod) bool {
		return pred.Update(event.TypedUpdateEvent[*corev1.Pod]{ObjectOld: o, ObjectNew: n})
	}
	heartbeat := pod("web")
	heartbeat.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if update(pod("web"), heartbeat) {
		t.Error("a status-only update enqueued")
	}
	if !update(pod("web"), pod("web-2")) {
		t.Error("a changed owner did not enqueue")
	}
	otherClass := pod("web")
	otherClass.Spec.Volumes[0].CSI.VolumeAttributes[inject.ClassAttribute] = "api"
	if !update(pod("web"), otherClass) {
		t.Error("a changed class did not enqueue")
	}
	otherSA := pod("web")
	otherSA.Spec.ServiceAccountName = "other"
	if !update(pod("web"), otherSA) {
		t.Error("a changed service account did not enqueue")
	}
}

// The consent of a service account names the classes it covers; the
// value "true" of earlier versions covers none.
func TestAllowsSyncOf(t *testing.T) {
	cases := map[string]struct {
		annotations map[string]string
		ok          bool
		why         string
	}{
		"not annotated": {nil, false, `it is not annotated secrets-store-injector.io/allow-sync: "db"`},
		"legacy true": {map[string]string{AnnotationAllowSync: " true "}, false,
			`its annotation secrets-store-injector.io/allow-sync: "true" names no class (it no longer consents to every class of the namespace); list the classes it may be synced for, e.g. secrets-store-injector.io/allow-sync: "db"`},
		"names the class":       {map[string]string{AnnotationAllowSync: "cache, db"}, true, ""},
		"names only the class":  {map[string]string{AnnotationAllowSync: "db"}, true, ""},
		"names other classes":   {map[string]string{AnnotationAllowSync: "cache,,web"}, false, `its annotation secrets-store-injector.io/allow-sync does not name the class (it names "cache,web"); add "db" to the list`},
		"empty":                 {map[string]string{AnnotationAllowSync: ""}, false, `its annotation secrets-store-injector.io/allow-sync does not name the class (it names ""); add "db" to the list`},
		"prefix is not a match": {map[string]string{AnnotationAllowSync: "db2,d"}, false, `its annotation secrets-store-injector.io/allow-sync does not name the class (it names "db2,d"); add "db" to the list`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, why := AllowsSyncOf(tc.annotations, "db")
			if ok != tc.ok || why != tc.why {
				t.Errorf("AllowsSyncOf = %v, %q; want %v, %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

type recordingTokens struct{ audiences []string }

func (r *recordingTokens) Token(_ context.Context, audience string) (string, error) {
	r.audiences = append(r.audiences, audience)
	return "token-for-" + audience, nil
}

// A pod-less token is never minted for the API server's own audience.
func TestPodlessTokensRefuseTheAPIServerAudience(t *testing.T) {
	cases := map[string]bool{ // audience -> minted
		"":                               false,
		"https://kubernetes.default.svc": false,
		"HTTPS://kubernetes.default.svc.cluster.local": false,
		"kubernetes.default.svc":                       false,
		"vault":                                        true,
		"sts.amazonaws.com":                            true,
		"https://issuer.example/gke":                   false, // an operator-listed audience
	}
	for aud, minted := range cases {
		t.Run(aud, func(t *testing.T) {
			inner := &recordingTokens{}
			p := podlessTokens{inner: inner, class: "ns/db", serviceAccount: "robot"}
			if aud == "https://issuer.example/gke" {
				p.apiAudiences = []string{"https://issuer.example/gke"}
			}
			tok, err := p.Token(context.Background(), aud)
			if minted {
				if err != nil || tok != "token-for-"+aud || len(inner.audiences) != 1 {
					t.Errorf("Token = %q, %v (minted %q); want a token", tok, err, inner.audiences)
				}
				return
			}
			if !errors.Is(err, ErrAPIServerAudience) || !errors.Is(err, errToken) || len(inner.audiences) != 0 {
				t.Fatalf("Token = %q, %v (minted %q); want ErrAPIServerAudience and nothing minted", tok, err, inner.audiences)
			}
			for _, want := range []string{"ns/db", `"robot"`, "set an explicit audience"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestProtectedNamespaces(t *testing.T) {
	cases := map[string]struct {
		own   string
		allow []string
		want  []string
	}{
		"default":                  {"platform", nil, []string{"kube-system", "platform"}},
		"kube-system allowed":      {"platform", []string{"kube-system"}, []string{"platform"}},
		"both allowed":             {"platform", []string{"platform", "kube-system"}, nil},
		"installed in kube-system": {"kube-system", nil, []string{"kube-system"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ProtectedNamespaces(tc.own, tc.allow); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ProtectedNamespaces = %q, want %q", got, tc.want)
			}
		})
	}
}
