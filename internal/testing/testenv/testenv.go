// Package testenv starts the real dependencies of integration tests: a
// kube-apiserver and etcd built from the pinned Kubernetes module (through
// envtest) with this project's CRDs installed, and a Vault server built from
// the pinned Vault module. Every process started is stopped by the cleanup
// registered with the test, also on failure.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ssinjector/ssi/internal/scheme"
)

// RepoRoot is the root of this repository, found from this file's path.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// GoBuild compiles the package at pkg (relative to the repository root,
// e.g. "agent") into out as a static binary (CGO_ENABLED=0, as the
// Dockerfiles build), with extra build flags, and returns out.
func GoBuild(t testing.TB, out, pkg string, flags ...string) string {
	t.Helper()
	args := append(append([]string{"build"}, flags...), "-o", out, "./"+pkg)
	cmd := exec.Command("go", args...) //nolint:gosec // builds a package of this repository
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, b)
	}
	return out
}

// BinDir is where the Makefile puts the binaries tests run.
func BinDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin")
}

// Binary returns the path of a binary the Makefile builds, or an error that
// says how to build it.
func Binary(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found in %s: run `make test` (or `make %s`) to build it: %w", name, BinDir(), "bin/"+name, err)
	}
	return p, nil
}

// SkipIfShort skips integration tests under `go test -short`; `make test`
// never passes -short, so there they always run.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the control plane; skipped with -short")
	}
}

// Env is a running control plane.
type Env struct {
	Env       *envtest.Environment
	Config    *rest.Config
	Client    client.Client
	Clientset *kubernetes.Clientset
}

// Options tune Start.
type Options struct {
	// Webhook, when set, installs these webhook configurations; envtest
	// fills in a local serving address and certificates.
	Webhook envtest.WebhookInstallOptions
	// APIServerArgs are extra kube-apiserver flags, as key=value pairs.
	APIServerArgs map[string]string
}

// Start runs kube-apiserver and etcd with the CRDs of manifests/crds, and
// stops them when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	SkipIfShort(t)
	e, err := StartEnv(opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return e
}

// StartEnv is Start without a testing.TB, for TestMain and the demo. The
// caller must call Stop.
func StartEnv(opts Options) (*Env, error) {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := Binary(b); err != nil {
			return nil, err
		}
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: BinDir(),
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "manifests", "crds")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: opts.Webhook,
		Scheme:                scheme.New(),
	}
	api := te.ControlPlane.GetAPIServer()
	for k, v := range opts.APIServerArgs {
		api.Configure().Set(k, v)
	}
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("envtest: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: te.Scheme})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{Env: te, Config: cfg, Client: c, Clientset: cs}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.Env.Stop() }

// Namespace creates a namespace with the given labels and returns its name.
func (e *Env) Namespace(t testing.TB, prefix string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// ServiceAccount creates a service account (idempotently) with annotations.
func (e *Env) ServiceAccount(t testing.TB, ns, name string, annotations map[string]string) *corev1.ServiceAccount {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}}
	if err := e.Client.Create(context.Background(), sa); err != nil {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
	return sa
}

// Token mints a service-account token with the TokenRequest API, optionally
// bound to a pod.
func (e *Env) Token(ctx context.Context, ns, sa string, audiences []string, ttl time.Duration, pod *corev1.Pod) (string, error) {
	secs := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &secs}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	out, err := e.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for %s/%s: %w", ns, sa, err)
	}
	if out.Status.Token == "" {
		return "", errors.New("TokenRequest returned an empty token")
	}
	return out.Status.Token, nil
}
