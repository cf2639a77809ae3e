package secretsync

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

const dbCreds = `{"username":"app","password":"s3cr3t-1"}`

// vaultClass is a Vault class with one object; the fake provider serves it
// under the name vault, so the class parses with the real Vault schema.
func vaultClass(t testing.TB, ns, name, secretObjects string) *ssiv1.SecretProviderClass {
	t.Helper()
	return classYAML(t, ns, fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: %s
spec:
  provider: vault
  parameters:
    roleName: app
    vaultAddress: http://127.0.0.1:1
    objects: |
      - objectName: db-password
        secretPath: secret/data/db
        secretKey: password
      - objectName: db-user
        secretPath: secret/data/db
        secretKey: username
  secretObjects:
%s`, name, secretObjects))
}

// dbPasswordSecret is the secretObjects of a class synced to an Opaque
// Secret "db" holding the object db-password under the key password.
const dbPasswordSecret = `
  - secretName: db
    type: Opaque
    data:
    - objectName: db-password
      key: password
`

func ownerKinds(s *corev1.Secret) string {
	var out []string
	for _, o := range s.OwnerReferences {
		out = append(out, o.Kind+"/"+o.Name)
	}
	return strings.Join(out, ",")
}

// The seed guide's "Syncing Secrets to Kubernetes Secrets" example, served
// by a fake aws provider: the Secret appears with the declared key, typed,
// labelled, owned by the pod; removing the pod removes it.
func TestSeedExampleSyncsAndDeletes(t *testing.T) {
	env := controlPlane(t)
	ns := namedNamespace(t, env, "production")
	serviceAccount(t, env, ns, "default", nil)
	fake := newFake("aws", map[string]string{"database-creds": dbCreds})
	fake.audience = "sts.amazonaws.com"
	h := startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	create(t, env, loadClass(t, filepath.Join(testenv.RepoRoot(), "test/testdata/seed/provider-with-sync.yaml"), ns))
	// envtest runs without the ServiceAccount admission plugin, which sets
	// "default" on a real cluster.
	pod := csiPod(ns, "web-0", "default", "aws-secrets-with-sync")
	create(t, env, pod)

	s := waitSecret(t, env, ns, "database-credentials", nil)
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %q, want Opaque", s.Type)
	}
	if got := string(s.Data["credentials"]); got != dbCreds || len(s.Data) != 1 {
		t.Errorf("data %v, want only credentials=%s", sortedKeys(s.Data), dbCreds)
	}
	if s.Labels[LabelManaged] != "true" || s.Annotations[AnnotationSyncedFrom] != "aws-secrets-with-sync" {
		t.Errorf("labels %v annotations %v", s.Labels, s.Annotations)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Pod" || s.OwnerReferences[0].UID != pod.UID {
		t.Errorf("owners %+v, want the pod %s", s.OwnerReferences, pod.UID)
	}
	// The token was minted for the pod's service account, bound to the
	// pod, for the provider's audience, short-lived.
	calls := fake.callsIn(ns)
	if len(calls) != 1 {
		t.Fatalf("%d fetches, want 1", len(calls))
	}
	c := calls[0].Claims
	if c.Sub != "system:serviceaccount:production:default" || c.Kubernetes.Pod == nil || c.Kubernetes.Pod.Name != "web-0" || c.Kubernetes.Pod.UID != string(pod.UID) {
		t.Errorf("token subject %q pod %+v", c.Sub, c.Kubernetes.Pod)
	}
	if len(c.Aud) != 1 || c.Aud[0] != "sts.amazonaws.com" {
		t.Errorf("token audiences %v", c.Aud)
	}
	if life := c.Exp - c.Iat; life != int64(DefaultTokenExpiration/time.Second) {
		t.Errorf("token lifetime %ds, want %s", life, DefaultTokenExpiration)
	}
	waitEvent(t, env, ns, "aws-secrets-with-sync", ReasonSecretCreated, "created Secret database-credentials with keys credentials")
	if got := testutil.ToFloat64(h.metrics.Syncs.WithLabelValues("aws", ResultChanged)); got != 1 {
		t.Errorf("ssi_sync_total{aws,changed} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.Managed); got != 1 {
		t.Errorf("ssi_sync_secrets_managed = %v, want 1", got)
	}

	if err := env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "database-credentials")
	waitEvent(t, env, ns, "aws-secrets-with-sync", ReasonSecretDeleted, "deleted Secret database-credentials")
	eventually(t, 10*time.Second, "managed gauge back to 0", func() (bool, string) {
		v := testutil.ToFloat64(h.metrics.Managed)
		return v == 0, fmt.Sprint(v)
	})
}

// Rotation fetches every interval, passes the versions it holds (so the
// provider answers Unchanged), writes only when content changed, and keeps
// the Secret through a failed fetch.
func TestRotationUpdatesOnlyOnChange(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "rotate")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw-1", "db-user": "app"})
	h := startController(t, env, nil, Options{Providers: provider.NewSet(fake), RotationInterval: 300 * time.Millisecond}, nil)

	create(t, env, vaultClass(t, ns, "db", dbPasswordSecret))
	create(t, env, csiPod(ns, "app-0", "app", "db"))
	first := waitSecret(t, env, ns, "db", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw-1" {
			return "password not pw-1"
		}
		return ""
	})
	eventually(t, 20*time.Second, "three rotations", func() (bool, string) {
		n := len(fake.callsIn(ns))
		return n >= 4, fmt.Sprintf("%d fetches", n)
	})
	for i, c := range fake.callsIn(ns)[1:] {
		if c.Unchanged != 2 || len(c.Current) != 2 {
			t.Errorf("rotation %d: current %v, %d unchanged; want both objects' versions passed and answered unchanged", i+1, c.Current, c.Unchanged)
		}
	}
	again, err := getSecret(env, ns, "db")
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != first.ResourceVersion {
		t.Errorf("Secret written by unchanged rotations: resourceVersion %s -> %s", first.ResourceVersion, again.ResourceVersion)
	}
	if got := testutil.ToFloat64(h.metrics.Syncs.WithLabelValues("vault", ResultUnchanged)); got < 3 {
		t.Errorf("unchanged syncs %v, want >= 3", got)
	}

	fake.set("db-password", "pw-2")
	waitSecret(t, env, ns, "db", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw-2" {
			return "password not rotated"
		}
		return ""
	})
	waitEvent(t, env, ns, "db", ReasonSecretUpdated, "updated Secret db (data keys password)")

	// A failing backend: an event with the provider's reason, the Secret
	// keeps its content.
	fake.mu.Lock()
	delete(fake.content, "db-password")
	fake.mu.Unlock()
	note := waitEvent(t, env, ns, "db", ReasonFetchFailed, `object "db-password"`, "NotFound", "Secrets keep their last synced content")
	if strings.Contains(note, "pw-") {
		t.Errorf("event carries a value: %s", note)
	}
	s, err := getSecret(env, ns, "db")
	if err != nil || string(s.Data["password"]) != "pw-2" {
		t.Errorf("Secret after failed fetch: %v %q", err, s.Data["password"])
	}
	if got := testutil.ToFloat64(h.metrics.Errors.WithLabelValues(ReasonFetchFailed + ":NotFound")); got < 1 {
		t.Errorf("ssi_sync_errors_total{FetchFailed:NotFound} = %v", got)
	}
}

// A pod the webhook rewrote consumes the classes of its agent
// configuration, always in its own namespace; owners are the pods' owners
// (or the pods); the Secret goes with the last consumer.
func TestInjectedPodsOwnersAndNamespace(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "injected")
	other := namespace(t, env, "other")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	decl := `
  - secretName: creds
    type: Opaque
    labels: {team: payments}
    annotations: {note: synced}
    data:
    - objectName: db-user
      key: user
    - objectName: db-password
      key: password
`
	create(t, env, vaultClass(t, ns, "db", decl))
	// A class of the same name elsewhere is never used for these pods.
	create(t, env, vaultClass(t, other, "db", strings.ReplaceAll(decl, "creds", "from-other")))

	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-5d8f"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "myapp"}}}},
		},
	}
	create(t, env, rs)
	owned := func(name string) *corev1.Pod {
		p := injectedPod(t, ns, name, "app", "db")
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
		return p
	}
	a, b := owned("web-5d8f-a"), owned("web-5d8f-b")
	bare := csiPod(ns, "debug", "app", "db")
	for _, p := range []*corev1.Pod{a, b, bare} {
		create(t, env, p)
	}
	s := waitSecret(t, env, ns, "creds", func(s *corev1.Secret) string {
		if got := ownerKinds(s); got != "Pod/debug,ReplicaSet/web-5d8f" {
			return "owners " + got
		}
		return ""
	})
	if string(s.Data["user"]) != "app" || string(s.Data["password"]) != "pw" {
		t.Errorf("data keys %v", sortedKeys(s.Data))
	}
	if s.Labels["team"] != "payments" || s.Labels[LabelManaged] != "true" || len(s.Labels) != 2 {
		t.Errorf("labels %v", s.Labels)
	}
	if s.Annotations["note"] != "synced" || s.Annotations[AnnotationSyncedFrom] != "db" || len(s.Annotations) != 2 {
		t.Errorf("annotations %v", s.Annotations)
	}
	for _, o := range s.OwnerReferences {
		if o.Controller != nil || o.BlockOwnerDeletion != nil {
			t.Errorf("owner %s/%s has controller/blockOwnerDeletion set", o.Kind, o.Name)
		}
	}

	// One fetch, as one of the consumers; pods of the other namespace
	// never enter: no Secret there.
	if calls := fake.callsIn(ns); len(calls) != 1 || calls[0].SA != "app" || calls[0].Claims.Kubernetes.Pod == nil {
		t.Errorf("fetches %+v, want one as a pod of service account app", calls)
	}
	assertNoSecret(t, env, other, "from-other", time.Second)
	if n := len(fake.callsIn(other)); n != 0 {
		t.Errorf("%d fetches in namespace %s", n, other)
	}

	ctx := context.Background()
	if err := env.Client.Delete(ctx, bare, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "creds", func(s *corev1.Secret) string {
		if got := ownerKinds(s); got != "ReplicaSet/web-5d8f" {
			return "owners " + got
		}
		return ""
	})
	// A pod in a terminal phase no longer consumes.
	a.Status.Phase = corev1.PodSucceeded
	if err := env.Client.Status().Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, b, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "creds")
}

// Pod-less sync needs both the class annotation and the service account's
// consent naming the class; the token is then not bound to a pod, and the
// class owns the Secret.
func TestPodlessSyncNeedsBothAnnotations(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "podless")
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	fake.audience = "vault"
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	serviceAccount(t, env, ns, "robot", nil)
	c := vaultClass(t, ns, "db", `
  - secretName: robot-creds
    type: Opaque
    data:
    - objectName: db-password
      key: password
`)
	c.Annotations = map[string]string{AnnotationSyncServiceAccount: "robot"}
	create(t, env, c)
	waitEvent(t, env, ns, "db", ReasonSyncServiceAccount, `names service account "robot", but it is not annotated secrets-store-injector.io/allow-sync: "db"`)
	assertNoSecret(t, env, ns, "robot-creds", time.Second)

	// The consent of earlier versions names no class: not enough.
	allowSync(t, env, ns, "robot", "true")
	waitEvent(t, env, ns, "db", ReasonSyncServiceAccount, `its annotation secrets-store-injector.io/allow-sync: "true" names no class`)
	assertNoSecret(t, env, ns, "robot-creds", time.Second)
	// Consent to other classes only: not enough.
	allowSync(t, env, ns, "robot", "cache,web")
	waitEvent(t, env, ns, "db", ReasonSyncServiceAccount, `does not name the class (it names "cache,web"); add "db" to the list`)
	assertNoSecret(t, env, ns, "robot-creds", time.Second)

	// The service account consents to this class: synced without any pod.
	allowSync(t, env, ns, "robot", "cache, db")
	s := waitSecret(t, env, ns, "robot-creds", nil)
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "SecretProviderClass" || s.OwnerReferences[0].UID != c.UID {
		t.Errorf("owners %+v, want the class", s.OwnerReferences)
	}
	calls := fake.callsIn(ns)
	if len(calls) != 1 || calls[0].SA != "robot" || calls[0].Pod != "" {
		t.Fatalf("fetches %+v", calls)
	}
	if cl := calls[0].Claims; cl.Sub != "system:serviceaccount:"+ns+":robot" || cl.Kubernetes.Pod != nil || !reflect.DeepEqual(cl.Aud, []string{"vault"}) {
		t.Errorf("token subject %q bound to %+v for %q, want robot, no pod, audience vault", cl.Sub, cl.Kubernetes.Pod, cl.Aud)
	}

	// Consent withdrawn: the Secret goes.
	allowSync(t, env, ns, "robot", "cache")
	waitNoSecret(t, env, ns, "robot-creds")

	// The annotation alone, naming a service account that does not exist.
	c2 := vaultClass(t, ns, "ghostly", `
  - secretName: ghost-creds
    type: Opaque
    data:
    - objectName: db-password
      key: password
`)
	c2.Annotations = map[string]string{AnnotationSyncServiceAccount: "ghost"}
	create(t, env, c2)
	waitEvent(t, env, ns, "ghostly", ReasonSyncServiceAccount, `names service account "ghost", but it does not exist in namespace `+ns)
	assertNoSecret(t, env, ns, "ghost-creds", time.Second)
}

// Malformed secretObjects produce an event naming the entry, field and
// problem, and no Secret; a valid entry of the same class still syncs.
func TestMalformedSecretObjects(t *testing.T) {
	env := controlPlane(t)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	cases := map[string]struct {
		decl   string
		secret string
		want   string // with %s for the class key
	}{
		"missing objectName": {
			decl: `
  - secretName: bad
    type: Opaque
    data:
    - key: password
`,
			secret: "bad",
			want:   `secretObjects[0] (Secret "bad"): data[0].objectName is empty; name an object of the class; the Secret is not synced`,
		},
		"unknown object": {
			decl: `
  - secretName: bad
    type: Opaque
    data:
    - objectName: db-pasword
      key: password
`,
			secret: "bad",
			want:   `secretObjects[0] (Secret "bad"): data[0].objectName "db-pasword" is not an object of SecretProviderClass %s (its objects are "db-password", "db-user"); the Secret is not synced`,
		},
		"duplicate key": {
			decl: `
  - secretName: bad
    type: Opaque
    data:
    - objectName: db-password
      key: value
    - objectName: db-user
      key: value
`,
			secret: "bad",
			want:   `secretObjects[0] (Secret "bad"): data[1].key "value" is already used by data[0]; each key of a Secret must be unique; the Secret is not synced`,
		},
		"tls with another key": {
			decl: `
  - secretName: bad
    type: kubernetes.io/tls
    data:
    - objectName: db-password
      key: ca.crt
`,
			secret: "bad",
			want:   `secretObjects[0] (Secret "bad"): data[0].key "ca.crt" is not supported for type kubernetes.io/tls: only tls.crt and tls.key are; the Secret is not synced`,
		},
		"missing type": {
			decl: `
  - secretName: bad
    data:
    - objectName: db-password
      key: password
`,
			secret: "bad",
			want:   `secretObjects[0] (Secret "bad"): type is empty; set it, for example to Opaque or kubernetes.io/tls; the Secret is not synced`,
		},
	}
	// Two problems of one class: both are visible, each with its message.
	cases["two problems in one class"] = struct {
		decl   string
		secret string
		want   string
	}{
		decl: `
  - secretName: bad
    type: Opaque
    data:
    - key: password
  - secretName: worse
    type: Opaque
    data:
    - objectName: db-user
      key: ""
`,
		secret: "bad",
		want:   `secretObjects[1] (Secret "worse"): data[0].key is empty; name the key of the Secret; the Secret is not synced`,
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := namespace(t, env, "malformed")
			serviceAccount(t, env, ns, "app", nil)
			// Each class also declares a valid Secret, which syncs.
			create(t, env, vaultClass(t, ns, "db", tc.decl+`
  - secretName: good
    type: Opaque
    data:
    - objectName: db-user
      key: user
`))
			create(t, env, csiPod(ns, "app-0", "app", "db"))
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, ns+"/db")
			}
			waitEvent(t, env, ns, "db", ReasonInvalidSecretObject, want)
			if name == "two problems in one class" {
				waitEvent(t, env, ns, "db", ReasonInvalidSecretObject, `secretObjects[0] (Secret "bad"): data[0].objectName is empty`)
			}
			waitSecret(t, env, ns, "good", nil)
			assertNoSecret(t, env, ns, tc.secret, 500*time.Millisecond)
		})
	}
}

// An existing Secret without the managed label is never overwritten or
// deleted; a managed Secret of the upstream driver is adopted only once it
// is annotated with the class that may adopt it.
func TestForeignSecretsAreLeftAlone(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "foreign")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	h := startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine"}, Data: map[string][]byte{"password": []byte("hand-made")}})
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upstream", Labels: map[string]string{LabelManaged: "true"}},
		Data: map[string][]byte{"password": []byte("old")}})
	create(t, env, vaultClass(t, ns, "db", `
  - secretName: mine
    type: Opaque
    data:
    - objectName: db-password
      key: password
  - secretName: upstream
    type: Opaque
    data:
    - objectName: db-password
      key: password
`))
	pod := csiPod(ns, "app-0", "app", "db")
	create(t, env, pod)
	waitEvent(t, env, ns, "db", ReasonSecretConflict, "Secret mine already exists and is not labelled secrets-store.csi.k8s.io/managed=true; the sync controller does not overwrite it")
	waitEvent(t, env, ns, "db", ReasonSecretConflict, `Secret upstream is labelled secrets-store.csi.k8s.io/managed=true but was not created by the sync controller; annotate it secrets-store-injector.io/adopt: "db" to let this class adopt it`)
	if s, err := getSecret(env, ns, "upstream"); err != nil || string(s.Data["password"]) != "old" {
		t.Fatalf("managed Secret taken over without the adopt annotation: %v %q", err, s.Data["password"])
	}
	annotate := func(value string) {
		t.Helper()
		s, err := getSecret(env, ns, "upstream")
		if err != nil {
			t.Fatal(err)
		}
		s.Annotations = map[string]string{AnnotationAdopt: value}
		if err := env.Client.Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Naming another class is no consent for this one.
	annotate("other")
	waitEvent(t, env, ns, "db", ReasonSecretConflict, `annotate it secrets-store-injector.io/adopt: "db"`)
	if s, _ := getSecret(env, ns, "upstream"); string(s.Data["password"]) != "old" {
		t.Fatal("adopted though the annotation names another class")
	}
	annotate("db")
	waitSecret(t, env, ns, "upstream", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw" || s.Annotations[AnnotationSyncedFrom] != "db" {
			return "not adopted"
		}
		if _, ok := s.Annotations[AnnotationAdopt]; ok {
			return "adopt annotation kept"
		}
		return ""
	})
	waitEvent(t, env, ns, "db", ReasonSecretAdopted, "adopting Secret upstream")
	eventually(t, 10*time.Second, "one managed Secret (the conflicting one is not)", func() (bool, string) {
		v := testutil.ToFloat64(h.metrics.Managed)
		return v == 1, fmt.Sprint(v)
	})
	if err := env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "upstream")
	s, err := getSecret(env, ns, "mine")
	if err != nil || string(s.Data["password"]) != "hand-made" {
		t.Errorf("foreign Secret changed: %v %q", err, s.Data["password"])
	}
}

// When the oldest consumer's identity is refused, the next service account
// among the consumers is tried; a class whose declaration is removed loses
// its Secret while the other stays.
func TestFallbackIdentityAndRemovedDeclaration(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "fallback")
	serviceAccount(t, env, ns, "intruder", nil)
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	fake.denySA("intruder")
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)

	c := vaultClass(t, ns, "db", `
  - secretName: one
    type: Opaque
    data:
    - objectName: db-password
      key: password
  - secretName: two
    type: Opaque
    data:
    - objectName: db-user
      key: user
`)
	create(t, env, c)
	create(t, env, csiPod(ns, "a-intruder", "intruder", "db"))
	time.Sleep(1100 * time.Millisecond) // creation timestamps have second resolution
	create(t, env, csiPod(ns, "b-app", "app", "db"))
	waitSecret(t, env, ns, "one", nil)
	waitSecret(t, env, ns, "two", nil)
	var sas []string
	for _, c := range fake.callsIn(ns) {
		sas = append(sas, c.SA)
	}
	if got := strings.Join(sas, ","); !strings.HasSuffix(got, "intruder,app") {
		t.Errorf("fetches as %s, want the refused intruder then app", got)
	}

	ctx := context.Background()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
		t.Fatal(err)
	}
	c.Spec.SecretObjects = c.Spec.SecretObjects[:1]
	if err := env.Client.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "two")
	if _, err := getSecret(env, ns, "one"); err != nil {
		t.Errorf("Secret one: %v", err)
	}
}

// A class of a provider the controller does not have gets an event.
func TestProviderNotAvailable(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "noprovider")
	serviceAccount(t, env, ns, "app", nil)
	startController(t, env, nil, Options{Providers: provider.NewSet(newFake("vault", map[string]string{}))}, nil)
	create(t, env, classYAML(t, ns, `
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: plugin
spec:
  provider: acme
  parameters:
    anything: goes
  secretObjects:
  - secretName: s
    type: Opaque
    data:
    - objectName: a
      key: a
`))
	create(t, env, csiPod(ns, "app-0", "app", "plugin"))
	waitEvent(t, env, ns, "plugin", ReasonProviderNotAvailable, `provider "acme" is not available to the sync controller (built in: vault)`)
}

// A kubernetes.io/tls Secret from one PEM object: tls.crt gets the
// certificates, tls.key the key as SEC1; the API server accepts the pair.
func TestTLSSecret(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "tls")
	serviceAccount(t, env, ns, "app", nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM := testCert(t, key, &key.PublicKey, "web.example")
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	sec1, _ := x509.MarshalECPrivateKey(key)
	bundle := string(certPEM) + string(pemOf("PRIVATE KEY", pkcs8))
	fake := newFake("vault", map[string]string{"db-password": bundle, "db-user": "x"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)
	create(t, env, vaultClass(t, ns, "web", `
  - secretName: web-tls
    type: kubernetes.io/tls
    data:
    - objectName: db-password
      key: tls.key
    - objectName: db-password
      key: tls.crt
`))
	create(t, env, csiPod(ns, "web-0", "app", "web"))
	s := waitSecret(t, env, ns, "web-tls", nil)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("type %s", s.Type)
	}
	if string(s.Data["tls.crt"]) != string(certPEM) {
		t.Errorf("tls.crt:\n%s", s.Data["tls.crt"])
	}
	if string(s.Data["tls.key"]) != string(pemOf("EC PRIVATE KEY", sec1)) {
		t.Errorf("tls.key is not the SEC1 form of the key")
	}
	if _, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
		t.Errorf("tls.crt and tls.key do not pair: %v", err)
	}
}

// A synced Secret changed or deleted by someone else is restored at once
// from the content held in memory, without a fetch.
func TestTamperedSecretIsRestored(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "tamper")
	serviceAccount(t, env, ns, "app", nil)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	startController(t, env, nil, Options{Providers: provider.NewSet(fake)}, nil)
	create(t, env, vaultClass(t, ns, "db", `
  - secretName: db
    type: Opaque
    labels: {team: a}
    data:
    - objectName: db-password
      key: password
`))
	create(t, env, csiPod(ns, "app-0", "app", "db"))
	s := waitSecret(t, env, ns, "db", nil)
	ctx := context.Background()

	s.Data["password"] = []byte("tampered")
	s.Data["extra"] = []byte("x")
	s.Labels["team"] = "b"
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "db", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw" || len(s.Data) != 1 || s.Labels["team"] != "a" {
			return "not restored"
		}
		return ""
	})
	if err := env.Client.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "db", func(n *corev1.Secret) string {
		if n.UID == s.UID {
			return "still the deleted Secret"
		}
		return ""
	})
	if n := len(fake.callsIn(ns)); n != 1 {
		t.Errorf("%d fetches, want 1: restoring needs no fetch", n)
	}
}

// wakingFake is a fake provider that asks for an early fetch.
type wakingFake struct {
	*fakeProvider
	wake chan struct{}
}

func (w wakingFake) Wake() <-chan struct{} { return w.wake }

// A provider's early-refetch signal (provider.Waker, e.g. a Vault lease
// that can no longer be renewed) fetches its classes at once, long before
// the rotation interval.
func TestProviderWakeRefetches(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "wake")
	serviceAccount(t, env, ns, "app", nil)
	fake := wakingFake{newFake("vault", map[string]string{"db-password": "pw-1", "db-user": "app"}), make(chan struct{}, 1)}
	startController(t, env, nil, Options{Providers: provider.NewSet(fake), RotationInterval: time.Hour}, nil)
	create(t, env, vaultClass(t, ns, "db", dbPasswordSecret))
	create(t, env, csiPod(ns, "app-0", "app", "db"))
	waitSecret(t, env, ns, "db", nil)
	fake.set("db-password", "pw-2")
	fake.wake <- struct{}{}
	waitSecret(t, env, ns, "db", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw-2" {
			return "not fetched again"
		}
		return ""
	})
	if n := len(fake.callsIn(ns)); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}
