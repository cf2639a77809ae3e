package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// harness is a real kube-apiserver with the generated
// MutatingWebhookConfiguration installed, pointing at the real webhook
// served in-process over TLS.
type harness struct {
	env    *testenv.Env
	server *Server
	hook   *envtest.WebhookInstallOptions
	// apiCalls counts the webhook's API requests other than watches.
	apiCalls atomic.Int64
	health   string // base URL of /healthz and /readyz
	metrics  string // base URL of /metrics
	addr     string // host:port of the webhook
}

// startHarness starts the control plane and the webhook; both stop when
// the test ends, also on failure.
func startHarness(t testing.TB) *harness {
	t.Helper()
	testenv.SkipIfShort(t)
	co := DefaultConfigurationOptions()
	// Fail, so that a webhook that did not answer fails the test instead of
	// silently admitting an unchanged pod.
	co.FailurePolicy = admissionregistrationv1.Fail
	co.ServiceNamespace = "ssi-system"
	hook := envtest.WebhookInstallOptions{
		MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{MutatingWebhookConfiguration(co)},
		LocalServingHost: "127.0.0.1",
	}
	env := testenv.Start(t, testenv.Options{
		Webhook: hook,
		// envtest disables the ServiceAccount admission plugin; run it, as
		// every real cluster does, to see what it adds around the webhook.
		APIServerArgs: map[string]string{"disable-admission-plugins": "DefaultStorageClass"},
	})
	h := &harness{env: env, hook: &env.Env.WebhookInstallOptions}
	h.addr = net.JoinHostPort(h.hook.LocalServingHost, fmt.Sprint(h.hook.LocalServingPort))
	healthAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	h.health, h.metrics = "http://"+healthAddr, "http://"+metricsAddr

	opts := DefaultOptions()
	opts.RESTConfig = rest.CopyConfig(env.Config)
	opts.RESTConfig.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("watch") == "" {
				h.apiCalls.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	opts.Host, opts.Port = h.hook.LocalServingHost, h.hook.LocalServingPort
	opts.CertDir = h.hook.LocalServingCertDir
	opts.CertWatchInterval = time.Second
	opts.HealthAddr, opts.MetricsAddr = healthAddr, metricsAddr
	opts.Namespace = "ssi-system"
	opts.FailurePolicy = admissionregistrationv1.Fail
	opts.LogLevel = "info"
	opts.Inject.AgentImage = "ssi-agent:test"

	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("webhook: %v", err)
	}
	h.server = s
	testenv.Background(t, "webhook", 30*time.Second, cancel, func() error { return s.Start(ctx) })
	h.waitReady(t)
	return h
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitReady waits for /readyz and for the API server to reach the webhook.
func (h *harness) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(h.health + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seedNamespace makes a namespace with the seed guide's classes and service
// account in it, and returns its name.
func (h *harness) seedNamespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	ns := h.env.Namespace(t, "production", labels)
	for _, f := range []string{"aws", "azure", "gcp", "vault"} {
		var c ssiv1.SecretProviderClass
		readYAML(t, seedDir+"/"+f+"-secret-provider.yaml", &c)
		c.Namespace = ns
		if err := h.env.Client.Create(ctx, &c); err != nil {
			t.Fatalf("create class: %v", err)
		}
	}
	h.env.ServiceAccount(t, ns, "app-service-account", map[string]string{
		identity.SAAnnotationAWSRoleARN:     "arn:aws:iam::111122223333:role/app",
		identity.SAAnnotationAzureClientID:  "00000000-1111-2222-3333-444444444444",
		identity.SAAnnotationGCPServiceAcct: "app@my-project.iam.gserviceaccount.com",
	})
	// The ServiceAccount admission plugin requires the namespace's default
	// service account, which a controller-manager would create.
	h.env.ServiceAccount(t, ns, "default", nil)
	return ns
}

// servedSerial returns the serial number of the certificate the webhook
// serves now.
func (h *harness) servedSerial(t testing.TB) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate only
	if err != nil {
		t.Fatalf("dial webhook: %v", err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// newCA makes a CA and a serving certificate for 127.0.0.1 and localhost
// signed by it, and returns the CA and the certificate and key, PEM
// encoded.
func newCA(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	ca := providertest.NewCA(t)
	certPEM, keyPEM = ca.Issue(t, providertest.Leaf{CommonName: "ssi-webhook", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	return ca.PEM(), certPEM, keyPEM
}

// writeAtomically replaces a file by rename, as kubelet's secret volumes
// and cert-manager's writers do.
func writeAtomically(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// restrictedApp is an app container that meets Pod Security "restricted".
func restrictedApp() corev1.Container {
	no, yes := false, true
	uid := int64(1000)
	return corev1.Container{
		Name: "app", Image: "app:1",
		VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store", MountPath: "/mnt/secrets", ReadOnly: true}},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &uid, AllowPrivilegeEscalation: &no,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func csiVolume(name, class string) corev1.Volume {
	yes := true
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: class},
	}}}
}

func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
