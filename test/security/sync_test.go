package security

// Attack tests of the sync controller (issue 14, findings 3, 4, 7 and the
// adopt part of 10), written as a tenant with namespace rights would try
// them: the tenant creates classes, pods, service accounts and Secrets in
// its own namespace, and watches what the shared controller does for it.
// The controller runs as `ssi-webhook sync` runs it (internal/secretsync.Run),
// under the access of manifests/sync/rbac.yaml, impersonating its service
// account, against a real kube-apiserver; where the controller's own
// checks are the first line, the test also tries the request directly as
// the controller's identity, to prove the admission policy holds on its
// own.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/yaml"

	"github.com/go-logr/logr/testr"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/chart"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/secretsync"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// syncFake is a Vault stand-in: it asks the identity for a token of the
// class's audience, as the Vault provider logs in, records the claims a
// backend would see, and serves every object of the class.
type syncFake struct {
	mu    gosync.Mutex
	calls []syncClaims
}

type syncClaims struct {
	Aud []string `json:"aud"`
	Sub string   `json:"sub"`
	K8s struct {
		Pod *struct {
			Name string `json:"name"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

func (f *syncFake) Name() string { return "vault" }

func (f *syncFake) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	tok, err := req.Identity.Tokens.Token(ctx, req.Class.Vault.Audience)
	if err != nil {
		return nil, &provider.Error{Class: req.Class.Key(), Provider: "vault", Reason: provider.ReasonUnauthenticated, Err: err}
	}
	var c syncClaims
	parts := strings.Split(tok, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	var out []provider.Object
	for _, fs := range req.Class.Files() {
		out = append(out, provider.Object{ID: fs.Path, Version: "1", Files: []atomicdir.File{{Path: fs.Path, Data: []byte("attacker-value")}}})
	}
	return out, nil
}

func (f *syncFake) tokens() []syncClaims {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]syncClaims(nil), f.calls...)
}

// syncSetup is one control plane with the sync controller's access
// installed, a configuration acting as its service account, and a fake
// Vault.
type syncSetup struct {
	env  *testenv.Env
	as   *rest.Config
	asCS *kubernetes.Clientset
	fake *syncFake
}

func syncStart(t *testing.T) *syncSetup {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	for _, ns := range []string{secretsync.DefaultNamespace, "kube-system"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	env.ServiceAccount(t, secretsync.DefaultNamespace, secretsync.DefaultServiceAccount, nil)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", "sync", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chart.Split(b)
	if err != nil {
		t.Fatalf("rbac.yaml: %v", err)
	}
	for _, u := range objs {
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	as := rest.CopyConfig(env.Config)
	as.Impersonate = rest.ImpersonationConfig{
		UserName: secretsync.RBACOptions{}.Username(),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + secretsync.DefaultNamespace, "system:authenticated"},
	}
	cs, err := kubernetes.NewForConfig(as)
	if err != nil {
		t.Fatal(err)
	}
	s := &syncSetup{env: env, as: as, asCS: cs, fake: &syncFake{}}
	// Wait until both policies are in force: an unlabelled Secret and a
	// pod-less token without consent are refused.
	probeNS := env.Namespace(t, "probe", nil)
	env.ServiceAccount(t, probeNS, "probe", nil)
	syncEventually(t, 30*time.Second, "admission policies in force", func() (bool, string) {
		_, err1 := cs.CoreV1().Secrets(probeNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{})
		err2 := s.podlessToken(probeNS, "probe", []string{"vault"})
		if err1 == nil {
			_ = env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: probeNS, Name: "probe"}})
		}
		return err1 != nil && strings.Contains(err1.Error(), "ssi-sync-guard") && err2 != nil && strings.Contains(err2.Error(), "ssi-sync-podless-guard"),
			fmt.Sprintf("secret: %v; token: %v", err1, err2)
	})
	return s
}

// run starts the controller, as its service account, until the test ends.
func (s *syncSetup) run(t *testing.T, allowedHosts ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := secretsync.RunOptions{
		Namespace: secretsync.DefaultNamespace, RotationInterval: time.Hour, AllowedBackendHosts: allowedHosts,
		MetricsAddr: "0", HealthAddr: "0", RESTConfig: s.as,
		Providers: func(*slog.Logger, time.Duration) provider.Set { return provider.NewSet(s.fake) },
		Logger:    testr.New(t),
		// Each test runs a controller of its own in this process.
		ManagerOptions: func(mo *manager.Options) { mo.Controller = config.Controller{SkipNameValidation: ptr.To(true)} },
	}
	testenv.Background(t, "sync controller", 30*time.Second, cancel, func() error { return secretsync.Run(ctx, opts) })
}

func (s *syncSetup) podlessToken(ns, sa string, audiences []string) error {
	secs := int64(600)
	_, err := s.asCS.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	return err
}

func syncEventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s (last: %s)", d, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncClass is the tenant's class: a Vault class (served by the fake)
// with the given extra parameters and secretObjects.
func syncClass(t *testing.T, ns, name, params, secretObjects string) *ssiv1.SecretProviderClass {
	t.Helper()
	c := &ssiv1.SecretProviderClass{}
	doc := fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: %s, namespace: %s}
spec:
  provider: vault
  parameters:
    roleName: app
%s
    objects: |
      - objectName: token
        secretPath: secret/data/app
        secretKey: token
  secretObjects:
%s`, name, ns, params, secretObjects)
	if err := yaml.UnmarshalStrict([]byte(doc), c); err != nil {
		t.Fatalf("class: %v", err)
	}
	return c
}

func syncPod(ns, name, sa, class string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: "s", MountPath: "/mnt/s", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: inject.CSIDriver, ReadOnly: ptr.To(true), VolumeAttributes: map[string]string{inject.ClassAttribute: class}}}}},
		},
	}
}

func (s *syncSetup) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := s.env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// waitEvent waits for an event on the class with the reason and a message
// containing want.
func (s *syncSetup) waitEvent(t *testing.T, ns, class, reason, want string) {
	t.Helper()
	syncEventually(t, 30*time.Second, fmt.Sprintf("event %s on %s/%s containing %q", reason, ns, class, want), func() (bool, string) {
		list, err := s.env.Clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name == class {
				seen = append(seen, e.Reason+": "+e.Message)
				if e.Reason == reason && strings.Contains(e.Message, want) {
					return true, ""
				}
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

func (s *syncSetup) noSecret(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := s.env.Clientset.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s/%s: %v; want none", ns, name, err)
	}
}

// Finding 3: a tenant declares a kubernetes.io/service-account-token
// Secret for a service account of its namespace; Kubernetes' token
// controller would fill it with a non-expiring token. The controller
// refuses the type, and its admission policy refuses it too.
func TestSyncServiceAccountTokenSecretIsRefused(t *testing.T) {
	s := syncStart(t)
	s.run(t)
	ns := s.env.Namespace(t, "tenant", nil)
	s.env.ServiceAccount(t, ns, "app", nil)
	s.create(t, syncClass(t, ns, "steal", "    audience: vault", `
  - secretName: legacy-token
    type: kubernetes.io/service-account-token
    annotations: {kubernetes.io/service-account.name: app}
    data: [{objectName: token, key: extra}]
  - secretName: bootstrap-token-abcdef
    type: bootstrap.kubernetes.io/token
    data: [{objectName: token, key: token-secret}]
  - secretName: canary
    type: Opaque
    data: [{objectName: token, key: value}]`))
	s.create(t, syncPod(ns, "app-0", "app", "steal"))
	// The valid entry syncs: the controller did look at the class.
	syncEventually(t, 30*time.Second, "Secret canary synced", func() (bool, string) {
		_, err := s.env.Clientset.CoreV1().Secrets(ns).Get(context.Background(), "canary", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	s.waitEvent(t, ns, "steal", secretsync.ReasonInvalidSecretObject, `secretObjects[0] (Secret "legacy-token"): type "kubernetes.io/service-account-token" is not a type the sync controller writes`)
	s.waitEvent(t, ns, "steal", secretsync.ReasonInvalidSecretObject, `secretObjects[1] (Secret "bootstrap-token-abcdef"): type "bootstrap.kubernetes.io/token" is not a type the sync controller writes`)
	s.noSecret(t, ns, "legacy-token")
	s.noSecret(t, ns, "bootstrap-token-abcdef")

	// The policy on its own: the controller's identity cannot create one.
	for _, typ := range []corev1.SecretType{corev1.SecretTypeServiceAccountToken, corev1.SecretTypeBootstrapToken, "example.com/custom"} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: ns,
			Labels:      map[string]string{secretsync.LabelManaged: "true"},
			Annotations: map[string]string{secretsync.AnnotationSyncedFrom: "steal", corev1.ServiceAccountNameKey: "app"}}, Type: typ}
		_, err := s.asCS.CoreV1().Secrets(ns).Create(context.Background(), sec, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "the sync controller writes only Secrets of the types") {
			t.Errorf("type %s as the controller: %v; want the ssi-sync-guard refusal", typ, err)
		}
	}
}

// Finding 4: a tenant names a service account for pod-less sync and a
// vaultAddress of its own, to receive an unbound token the API server
// accepts. The consent must name the class, the token is never minted for
// the API server's audience, and the operator's backend host list keeps
// the class's address out.
func TestSyncPodlessTokenIsNotHandedOut(t *testing.T) {
	s := syncStart(t)
	s.run(t, "127.0.0.1", "*.vault.example.com")
	ns := s.env.Namespace(t, "tenant", nil)
	// An old-style consent, given before consent named classes.
	s.env.ServiceAccount(t, ns, "robot", map[string]string{secretsync.AnnotationAllowSync: "true"})
	podless := map[string]string{secretsync.AnnotationSyncServiceAccount: "robot"}
	entry := `
  - secretName: %s
    type: Opaque
    data: [{objectName: token, key: value}]`

	legacy := syncClass(t, ns, "legacy", "    audience: vault\n    vaultAddress: http://127.0.0.1:8200", fmt.Sprintf(entry, "legacy"))
	legacy.Annotations = podless
	s.create(t, legacy)
	s.waitEvent(t, ns, "legacy", secretsync.ReasonSyncServiceAccount, `its annotation secrets-store-injector.io/allow-sync: "true" names no class`)

	// Consent for the classes below, which ask for the API server's
	// audience or name a host of the attacker.
	sa := &corev1.ServiceAccount{}
	if err := s.env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "robot"}, sa); err != nil {
		t.Fatal(err)
	}
	sa.Annotations = map[string]string{secretsync.AnnotationAllowSync: "apiaud,elsewhere"}
	if err := s.env.Client.Update(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	apiAud := syncClass(t, ns, "apiaud", "    vaultAddress: http://127.0.0.1:8200", fmt.Sprintf(entry, "apiaud"))
	apiAud.Annotations = podless
	s.create(t, apiAud)
	s.waitEvent(t, ns, "apiaud", secretsync.ReasonTokenRequestFailed, "pod-less sync never mints a token for the API server's own audience")
	elsewhere := syncClass(t, ns, "elsewhere", "    audience: vault\n    vaultAddress: https://collector.attacker.example", fmt.Sprintf(entry, "elsewhere"))
	elsewhere.Annotations = podless
	s.create(t, elsewhere)
	s.waitEvent(t, ns, "elsewhere", secretsync.ReasonBackendNotAllowed, `parameters.vaultAddress: host "collector.attacker.example" is not among the backend hosts`)
	for _, name := range []string{"legacy", "apiaud", "elsewhere"} {
		s.noSecret(t, ns, name)
	}
	if calls := s.fake.tokens(); len(calls) != 0 {
		t.Errorf("the backend received tokens %+v; want none", calls)
	}

	// The policy on its own, as the controller's identity.
	for name, tc := range map[string]struct {
		sa        string
		audiences []string
		want      string
	}{
		"API server audience":         {"robot", []string{"https://kubernetes.default.svc.cluster.local"}, "only for an explicit audience that is not the API server's"},
		"API server audience, second": {"robot", []string{"vault", "https://kubernetes.default.svc"}, "only for an explicit audience that is not the API server's"},
		"no consent":                  {"default-less", []string{"vault"}, "only for a service account whose secrets-store-injector.io/allow-sync annotation names classes"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.sa == "default-less" {
				s.env.ServiceAccount(t, ns, tc.sa, nil)
			}
			if err := s.podlessToken(ns, tc.sa, tc.audiences); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("pod-less token: %v; want a refusal containing %q", err, tc.want)
			}
		})
	}
	if err := s.podlessToken(ns, "robot", []string{"vault"}); err != nil {
		t.Errorf("pod-less token for a consenting account and an explicit audience: %v", err)
	}
}

// Finding 7: the sync controller is a process of its own; its identity is
// refused the operator's namespaces (the release namespace, kube-system),
// where a tenant cannot create classes but whose Secrets and tokens are
// the cluster's own.
func TestSyncProtectedNamespaces(t *testing.T) {
	s := syncStart(t)
	s.run(t)
	for _, ns := range []string{"kube-system", secretsync.DefaultNamespace} {
		s.env.ServiceAccount(t, ns, "app", nil)
		s.create(t, syncClass(t, ns, "sys", "    audience: vault", `
  - secretName: sys
    type: Opaque
    data: [{objectName: token, key: value}]`))
		s.create(t, syncPod(ns, "app-0", "app", "sys"))
		s.waitEvent(t, ns, "sys", secretsync.ReasonNamespaceNotAllowed, "namespace "+ns+" is protected")
		s.noSecret(t, ns, "sys")
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: ns,
			Labels: map[string]string{secretsync.LabelManaged: "true"}, Annotations: map[string]string{secretsync.AnnotationSyncedFrom: "sys"}}}
		if _, err := s.asCS.CoreV1().Secrets(ns).Create(context.Background(), sec, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "in the protected namespaces") {
			t.Errorf("Secret in %s as the controller: %v; want the protected-namespace refusal", ns, err)
		}
	}
	if len(s.fake.tokens()) != 0 {
		t.Errorf("fetched for a protected namespace: %+v", s.fake.tokens())
	}
}

// Finding 10 (adopt): another team's Secret carries the upstream driver's
// managed label; a tenant's class declaring the same name must not take
// it over (its content would become the attacker's).
func TestSyncManagedSecretIsNotAdoptedWithoutConsent(t *testing.T) {
	s := syncStart(t)
	s.run(t)
	ns := s.env.Namespace(t, "shared", nil)
	s.env.ServiceAccount(t, ns, "attacker", nil)
	s.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-db", Labels: map[string]string{secretsync.LabelManaged: "true"}},
		Data: map[string][]byte{"password": []byte("the-real-one")}})
	s.create(t, syncClass(t, ns, "takeover", "    audience: vault", `
  - secretName: payments-db
    type: Opaque
    data: [{objectName: token, key: password}]`))
	s.create(t, syncPod(ns, "attacker-0", "attacker", "takeover"))
	s.waitEvent(t, ns, "takeover", secretsync.ReasonSecretConflict, `annotate it secrets-store-injector.io/adopt: "takeover" to let this class adopt it`)
	got, err := s.env.Clientset.CoreV1().Secrets(ns).Get(context.Background(), "payments-db", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != "the-real-one" || got.Annotations[secretsync.AnnotationSyncedFrom] != "" {
		t.Errorf("payments-db after the attempt: %v %q %v", err, got.Data["password"], got.Annotations)
	}
}
