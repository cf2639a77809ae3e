package webhook

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/internal/testing/testpki"
)

// BenchmarkAdmissionServer measures the shipped webhook alone: ssi-webhook
// built from ./webhook (or $SSI_WEBHOOK_BIN; `make bench-webhook` passes
// bin/ssi-webhook) runs as a child process against a real kube-apiserver,
// and the load generator of BenchmarkAdmissionHTTPS (the seed guide's AWS
// pod, SSI_BENCH_RATE admissions per second for SSI_BENCH_SECONDS, open
// loop, over HTTPS with connections reused as the API server reuses them)
// runs in the test process. cpu-ms/admission is the server process's CPU
// time (utime+stime from /proc/PID/stat, at the kernel's 10 ms tick, over
// about a thousand admissions) divided by the admissions: its TLS, HTTP,
// decoding, informer-cache lookups, rewrite and patch, and whatever else
// it does meanwhile (informers, metrics); not the client's TLS or the load
// generator. Latency is measured at the client.
func BenchmarkAdmissionServer(b *testing.B) {
	bin := webhookBinary(b)
	env := testenv.Start(b, testenv.Options{
		// As in startHarness: the ServiceAccount admission plugin runs.
		APIServerArgs: map[string]string{"disable-admission-plugins": "DefaultStorageClass"},
	})
	ns := (&harness{env: env}).seedNamespace(b, map[string]string{inject.LabelInjection: inject.LabelValueEnabled})

	dir := b.TempDir()
	ca, err := testpki.NewCA("bench-webhook-ca", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(testpki.Leaf{CommonName: "127.0.0.1", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	user, err := env.Env.ControlPlane.AddUser(envtest.User{Name: "bench-webhook", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		b.Fatal(err)
	}

	port, err := testenv.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	health := testenv.FreeAddr(b)
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--cert-dir", dir,
		"--health-probe-bind-address", health, "--metrics-bind-address", "0", "--namespace", "ssi-system",
		"--agent-image", "ssi-agent:bench")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + kcPath}
	pid := testenv.StartChild(b, "ssi-webhook serve", cmd).Pid()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + health + "/readyz") //nolint:noctx // loopback readiness poll
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not ready within 60s: %v", bin, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	serverCPU := func() time.Duration { return procCPU(b, pid) }
	r := admissionLoad(b, fmt.Sprintf("https://127.0.0.1:%d%s", port, DefaultPath), roots, ns, serverCPU, serverCPU)
	b.Logf("%s serve, pid %d: %d admissions in %s, %s CPU (the server process alone); machine shared with other builds, figures are upper bounds",
		bin, pid, r.total, r.elapsed.Round(time.Millisecond), r.cpu)
	b.ReportMetric(float64(r.total)/r.elapsed.Seconds(), "admissions/s")
	b.ReportMetric(float64(r.cpu.Microseconds())/1000/float64(r.total), "server-cpu-ms/admission")
	reportLatency(b, r.lat)
}

// webhookBinary is $SSI_WEBHOOK_BIN or ssi-webhook built from ./webhook as
// `make build` builds it.
func webhookBinary(b *testing.B) string {
	if p := os.Getenv("SSI_WEBHOOK_BIN"); p != "" {
		return p
	}
	return testenv.GoBuild(b, filepath.Join(b.TempDir(), "ssi-webhook"), "webhook")
}

// procCPU is utime+stime of PID from /proc/PID/stat (USER_HZ is 100).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
