package security

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/internal/webhook"
)

// TestNetidWebhookClientCertificates is finding 8: any pod that reaches
// the webhook port can post a crafted AdmissionReview for a pod of another
// namespace and read the class parameters and the service account's
// identity annotations back from the patch. With --client-ca the port
// serves only clients with a certificate of that CA: a real kube-apiserver
// presenting one through its admission kubeconfig
// (--admission-control-config-file) has its pods rewritten, while the
// attacker without a certificate, or with one of another CA, is refused
// at the TLS handshake.
func TestNetidWebhookClientCertificates(t *testing.T) {
	testenv.SkipIfShort(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hostPort := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	dir := t.TempDir()
	clientCA := providertest.NewCA(t)
	apiCert, apiKey := clientCA.Issue(t, providertest.Leaf{CommonName: "kube-apiserver-webhook-client", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	files := map[string][]byte{"client-ca.crt": clientCA.PEM(), "apiserver.crt": apiCert, "apiserver.key": apiKey}
	// The user entry is named after the webhook's host as the API server
	// calls it: here the URL envtest installs, in a cluster the Service
	// host ssi-webhook.<namespace>.svc.
	files["webhook-kubeconfig.yaml"] = []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
users:
  - name: %q
    user:
      client-certificate: %s
      client-key: %s
`, hostPort, filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")))
	files["admission.yaml"] = []byte(fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: %s
`, filepath.Join(dir, "webhook-kubeconfig.yaml")))
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	co := webhook.DefaultConfigurationOptions()
	co.FailurePolicy = admissionregistrationv1.Fail
	co.ServiceNamespace = "ssi-system"
	env := testenv.Start(t, testenv.Options{
		Webhook: envtest.WebhookInstallOptions{
			MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{webhook.MutatingWebhookConfiguration(co)},
			LocalServingHost: "127.0.0.1",
			LocalServingPort: port,
		},
		APIServerArgs: map[string]string{"admission-control-config-file": filepath.Join(dir, "admission.yaml")},
	})
	hook := &env.Env.WebhookInstallOptions

	opts := webhook.DefaultOptions()
	opts.RESTConfig = rest.CopyConfig(env.Config)
	opts.Host, opts.Port = hook.LocalServingHost, hook.LocalServingPort
	opts.CertDir = hook.LocalServingCertDir
	opts.CertWatchInterval = time.Second
	healthAddr := testenv.FreeAddr(t)
	opts.HealthAddr, opts.MetricsAddr = healthAddr, "0"
	opts.Namespace = "ssi-system"
	opts.FailurePolicy = admissionregistrationv1.Fail
	opts.Inject.AgentImage = "ssi-agent:test"
	opts.ClientCAFile = filepath.Join(dir, "client-ca.crt")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := webhook.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("webhook: %v", err)
	}
	testenv.Background(t, "webhook", 30*time.Second, cancel, func() error { return s.Start(ctx) })
	netidWaitReady(t, "http://"+healthAddr+"/readyz")

	// The victim's namespace: a class and an annotated service account.
	victim := env.Namespace(t, "victim", map[string]string{inject.LabelInjection: inject.LabelValueEnabled})
	env.ServiceAccount(t, victim, "default", map[string]string{identity.SAAnnotationAWSRoleARN: "arn:aws:iam::111122223333:role/victim-prod"})
	class := netidClass(victim, "db", "vault", map[string]string{"vaultAddress": "https://vault.victim.internal:8200", "roleName": "victim-prod",
		"objects": "- objectName: db\n  secretPath: secret/data/victim/db\n"})
	if err := env.Client.Create(ctx, class); err != nil {
		t.Fatal(err)
	}

	t.Run("the API server with its client certificate is served", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; ; i++ {
			pod := netidPod(victim, fmt.Sprintf("app-%d", i))
			err := env.Client.Create(ctx, pod)
			if err == nil && pod.Annotations[inject.AnnotationStatus] == inject.StatusInjected {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod not rewritten through the API server (err %v, annotations %v)", err, pod.Annotations)
			}
			time.Sleep(500 * time.Millisecond) // caches of a just-created class
		}
	})

	review := netidReview(t, victim)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(hook.LocalServingCAData)
	pair, err := tls.X509KeyPair(apiCert, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	other := providertest.NewCA(t).KeyPair(t, providertest.Leaf{CommonName: "attacker", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	for name, tc := range map[string]struct {
		certs  []tls.Certificate
		served bool
	}{
		"a pod without a client certificate is refused":  {},
		"a pod with another CA's certificate is refused": {certs: []tls.Certificate{other}},
		"the API server's certificate is served":         {certs: []tls.Certificate{pair}, served: true},
	} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: tc.certs, MinVersion: tls.VersionTLS12}}}
			resp, err := c.Post("https://"+hostPort+webhook.DefaultPath, "application/json", bytes.NewReader(review))
			if !tc.served {
				if err == nil {
					var out admissionv1.AdmissionReview
					_ = json.NewDecoder(resp.Body).Decode(&out)
					_ = resp.Body.Close()
					t.Fatalf("the crafted review was answered (status %d, patch %d bytes)", resp.StatusCode, len(out.Response.Patch))
				}
				if !strings.Contains(err.Error(), "certificate") {
					t.Errorf("refused with %v, want a TLS client certificate error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("post with the API server's certificate: %v", err)
			}
			defer func() { _ = resp.Body.Close() }()
			var out admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if out.Response == nil || len(out.Response.Patch) == 0 {
				t.Fatalf("no rewrite for the API server: %+v", out.Response)
			}
		})
	}
}

func netidWaitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url) //nolint:gosec,noctx // loopback health endpoint of the test's webhook
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// netidPod is a pod of ns that mounts class db through the CSI volume.
func netidPod(ns, name string) *corev1.Pod {
	yes, no := true, false
	uid := int64(1000)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			// envtest runs no ServiceAccount admission plugin to set it.
			ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "app", Image: "app:1",
				VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store", MountPath: "/mnt/secrets", ReadOnly: true}},
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot: &yes, RunAsUser: &uid, AllowPrivilegeEscalation: &no,
					Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
			}},
			Volumes: []corev1.Volume{{Name: "secrets-store", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: "db"},
			}}}},
		},
	}
}

// netidReview is the attacker's crafted AdmissionReview: a pod "in" the
// victim's namespace, asking for the victim's class.
func netidReview(t *testing.T, victimNS string) []byte {
	t.Helper()
	pod := netidPod(victimNS, "probe")
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "attacker-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: victimNS, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
