package secretsync

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// One control plane serves every integration test of the package; each
// test works in namespaces of its own and runs its own controller.
var shared = testenv.NewShared(testenv.Options{})

func TestMain(m *testing.M) {
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	os.Exit(shared.Run(m))
}

func controlPlane(t testing.TB) *testenv.Env { return shared.Env(t) }

// fakeProvider serves object content from memory, with content-derived
// versions, and records who each fetch ran as (decoding the claims of the
// token it asked for, as a backend verifying it would).
type fakeProvider struct {
	name     string
	audience string

	mu      gosync.Mutex
	content map[string]string // file path -> content
	deny    map[string]bool   // service accounts refused
	calls   []fakeCall
}

type fakeCall struct {
	Pod       string
	PodUID    string
	SA        string
	Namespace string
	Claims    tokenClaims
	Current   map[string]string
	Unchanged int
}

type tokenClaims struct {
	Aud        []string `json:"aud"`
	Exp        int64    `json:"exp"`
	Iat        int64    `json:"iat"`
	Sub        string   `json:"sub"`
	Kubernetes struct {
		Namespace string `json:"namespace"`
		Pod       *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

func newFake(name string, content map[string]string) *fakeProvider {
	return &fakeProvider{name: name, content: content, deny: map[string]bool{}}
}

func (f *fakeProvider) Name() string { return f.name }

func (f *fakeProvider) set(path, content string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.content[path] = content
}

func (f *fakeProvider) denySA(sa string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny[sa] = true
}

func (f *fakeProvider) callsIn(ns string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Namespace == ns {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeProvider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	tok, err := req.Identity.Tokens.Token(ctx, f.audience)
	if err != nil {
		return nil, &provider.Error{Class: req.Class.Key(), Provider: f.name, Reason: provider.ReasonUnauthenticated, Err: err}
	}
	claims, err := decodeClaims(tok)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := fakeCall{Pod: req.Identity.Pod.Name, PodUID: req.Identity.Pod.UID, SA: req.Identity.Pod.ServiceAccount,
		Namespace: req.Identity.Pod.Namespace, Claims: claims, Current: req.Current}
	if f.deny[req.Identity.Pod.ServiceAccount] {
		f.calls = append(f.calls, call)
		return nil, &provider.Error{Class: req.Class.Key(), Provider: f.name, Reason: provider.ReasonAccessDenied,
			Err: fmt.Errorf("role of service account %q may not read", req.Identity.Pod.ServiceAccount)}
	}
	var paths []string
	if req.Class.BuiltIn() {
		for _, fs := range req.Class.Files() {
			paths = append(paths, fs.Path)
		}
	} else {
		paths = sortedKeys(f.content)
	}
	// Per-object failures, as the built-in providers report them
	// (provider.Partial), so that optional objects can be missing.
	var out []provider.Object
	var missing []*provider.Error
	for _, p := range paths {
		c, ok := f.content[p]
		if !ok {
			missing = append(missing, &provider.Error{Class: req.Class.Key(), Provider: f.name, Object: p, Reason: provider.ReasonNotFound, Err: errors.New("no such secret")})
			continue
		}
		sum := sha256.Sum256([]byte(c))
		v := hex.EncodeToString(sum[:8])
		if req.Current[p] == v {
			out = append(out, provider.Object{ID: p, Version: v, Unchanged: true})
			call.Unchanged++
			continue
		}
		out = append(out, provider.Object{ID: p, Version: v, Files: []atomicdir.File{{Path: p, Data: []byte(c)}}})
	}
	f.calls = append(f.calls, call)
	return provider.Partial(out, missing)
}

func decodeClaims(tok string) (tokenClaims, error) {
	var c tokenClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, fmt.Errorf("token payload: %w", err)
	}
	return c, json.Unmarshal(b, &c)
}

// harness is one running controller.
type harness struct {
	t       testing.TB
	env     *testenv.Env
	r       *Reconciler
	metrics *Metrics
	// stop stops the manager (also done when the test ends).
	stop func()
}

// startController runs a manager with the controller until the test ends.
// cfg nil means the control plane's admin configuration.
func startController(t testing.TB, env *testenv.Env, cfg *rest.Config, opts Options, mo func(*manager.Options)) *harness {
	t.Helper()
	if cfg == nil {
		cfg = env.Config
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = testr.NewWithInterface(t, testr.Options{Verbosity: 1})
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.RotationInterval == 0 {
		opts.RotationInterval = time.Hour
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	o := manager.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if mo != nil {
		mo(&o)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	r, err := Setup(mgr, opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, env: env, r: r, metrics: opts.Metrics}
	h.stop = testenv.Background(t, "manager", 30*time.Second, cancel, func() error { return mgr.Start(ctx) })
	return h
}

// namespace creates a namespace and removes the test's pods, classes and
// Secrets from it when the test ends (envtest runs no namespace
// controller), after the controller stopped.
func namespace(t testing.TB, env *testenv.Env, prefix string) string {
	t.Helper()
	ns := env.Namespace(t, prefix, nil)
	t.Cleanup(func() { wipe(env, ns) })
	return ns
}

func wipe(env *testenv.Env, ns string) {
	ctx := context.Background()
	_ = env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
	_ = env.Client.DeleteAllOf(ctx, &ssiv1.SecretProviderClass{}, client.InNamespace(ns))
	_ = env.Client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns))
}

func namedNamespace(t testing.TB, env *testenv.Env, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { wipe(env, name) })
	return name
}

func create(t testing.TB, env *testenv.Env, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// serviceAccount creates a service account unless it exists.
func serviceAccount(t testing.TB, env *testenv.Env, ns, name string, annotations map[string]string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}}
	if err := env.Client.Create(context.Background(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account: %v", err)
	}
}

// allowSync sets the service account's allow-sync annotation to value.
func allowSync(t testing.TB, env *testenv.Env, ns, name, value string) {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sa); err != nil {
		t.Fatal(err)
	}
	sa.Annotations = map[string]string{AnnotationAllowSync: value}
	if err := env.Client.Update(ctx, sa); err != nil {
		t.Fatal(err)
	}
}

// loadClass reads a SecretProviderClass from YAML and moves it to ns.
func loadClass(t testing.TB, path, ns string) *ssiv1.SecretProviderClass {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &ssiv1.SecretProviderClass{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c.Namespace = ns
	return c
}

func classYAML(t testing.TB, ns, doc string) *ssiv1.SecretProviderClass {
	t.Helper()
	c := &ssiv1.SecretProviderClass{}
	if err := yaml.UnmarshalStrict([]byte(doc), c); err != nil {
		t.Fatalf("class: %v", err)
	}
	c.Namespace = ns
	return c
}

// csiPod is a pod the node shim would serve: the seed guide's container
// and csi volume.
func csiPod(ns, name, sa, class string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "myapp:latest",
				Env: []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "database-credentials"}, Key: "credentials"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store", MountPath: "/mnt/secrets", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "secrets-store", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: inject.CSIDriver, ReadOnly: ptr.To(true), VolumeAttributes: map[string]string{inject.ClassAttribute: class}}}}},
		},
	}
}

// injectedPod is shaped like a pod the webhook rewrote: the volume became
// an emptyDir and the agent's configuration names the class.
func injectedPod(t testing.TB, ns, name, sa string, classes ...string) *corev1.Pod {
	t.Helper()
	cfg := agentconfig.Config{Mode: agentconfig.ModeSidecar}
	for i, c := range classes {
		cfg.Volumes = append(cfg.Volumes, agentconfig.Volume{
			Name: fmt.Sprintf("secrets-%d", i), Path: fmt.Sprintf("/var/run/secrets-store-injector/volumes/secrets-%d", i),
			// The recorded namespace is ignored: classes come from the pod's.
			Class: agentconfig.Class{Namespace: "elsewhere", Name: c, Provider: "vault"},
		})
	}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{inject.AnnotationStatus: inject.StatusInjected}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			InitContainers: []corev1.Container{{Name: "ssi-agent", Image: "ssi-agent:test", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				Env: []corev1.EnvVar{{Name: agentconfig.EnvConfig, Value: enc}}}},
			Containers: []corev1.Container{{Name: "app", Image: "myapp:latest"}},
		},
	}
	for i := range classes {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("secrets-%d", i),
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	}
	return p
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if msg != "" {
			last = msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s (last: %s)", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getSecret(env *testenv.Env, ns, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)
	return s, err
}

// waitSecret waits until the Secret exists and check passes on it.
func waitSecret(t testing.TB, env *testenv.Env, ns, name string, check func(*corev1.Secret) string) *corev1.Secret {
	t.Helper()
	var got *corev1.Secret
	eventually(t, 30*time.Second, fmt.Sprintf("Secret %s/%s as expected", ns, name), func() (bool, string) {
		s, err := getSecret(env, ns, name)
		if err != nil {
			return false, err.Error()
		}
		if check != nil {
			if msg := check(s); msg != "" {
				return false, msg
			}
		}
		got = s
		return true, ""
	})
	return got
}

func waitNoSecret(t testing.TB, env *testenv.Env, ns, name string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("Secret %s/%s deleted", ns, name), func() (bool, string) {
		_, err := getSecret(env, ns, name)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, "still exists"
	})
}

// assertNoSecret checks, for a while, that a Secret does not appear.
func assertNoSecret(t testing.TB, env *testenv.Env, ns, name string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := getSecret(env, ns, name); !apierrors.IsNotFound(err) {
			t.Fatalf("Secret %s/%s exists (err %v); want none", ns, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// classEvents lists the events regarding a class.
func classEvents(env *testenv.Env, ns, class string) []corev1.Event {
	list, err := env.Clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "SecretProviderClass" && e.InvolvedObject.Name == class {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an event on the class with the reason and a note
// containing every fragment, and returns its note.
func waitEvent(t testing.TB, env *testenv.Env, ns, class, reason string, fragments ...string) string {
	t.Helper()
	var note string
	eventually(t, 30*time.Second, fmt.Sprintf("event %s on SecretProviderClass %s/%s containing %q", reason, ns, class, fragments), func() (bool, string) {
		var seen []string
	next:
		for _, e := range classEvents(env, ns, class) {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason != reason {
				continue
			}
			for _, f := range fragments {
				if !strings.Contains(e.Message, f) {
					continue next
				}
			}
			note = e.Message
			return true, ""
		}
		return false, strings.Join(seen, " | ")
	})
	return note
}
