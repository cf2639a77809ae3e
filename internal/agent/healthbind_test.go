package agent

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func TestHealthAddr(t *testing.T) {
	tests := map[string]struct{ addr, podIP, want string }{
		"webhook's address gets the pod IP": {":9811", "10.1.2.3", "10.1.2.3:9811"},
		"IPv6 pod":                          {":9811", "fd00::7", "[fd00::7]:9811"},
		"explicit host is kept":             {"127.0.0.1:9811", "10.1.2.3", "127.0.0.1:9811"},
		"no pod IP (run by hand)":           {":9811", "", ":9811"},
		"pod IP that is not an IP":          {":9811", "pod.local", ":9811"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := healthAddr(tc.addr, tc.podIP); got != tc.want {
				t.Errorf("healthAddr(%q, %q) = %q, want %q", tc.addr, tc.podIP, got, tc.want)
			}
		})
	}
}

// TestHealthPortOnlyOnPodIP runs the agent with the webhook's host-less
// health address and a pod IP (127.0.0.2, a loopback address the test can
// own): the port answers there, where kubelet probes, and nowhere else.
// Before, it listened on every interface.
func TestHealthPortOnlyOnPodIP(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		testenv.RequireCapability(t, "loopback address 127.0.0.2", err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	_ = probe.Close()

	cfg := testConfig(t, agentconfig.ModeSidecar, time.Hour, "app")
	cfg.HealthAddr = ":" + strconv.Itoa(port)
	t.Setenv(agentconfig.EnvPodIP, "127.0.0.2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: cfg, Providers: provider.NewSet(newFake("fake", map[string]string{"a": "health-bind-value"})),
			Pod:       &identity.Pod{Namespace: "team-a", Name: "app-0"},
			LogOutput: suiteLogs.Tee(t), TerminationLog: "-",
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			_ = err // the run ends with the cancellation; its outcome is not under test here
		case <-time.After(5 * time.Second):
			t.Error("agent did not stop")
		}
	})

	podURL := "http://" + net.JoinHostPort("127.0.0.2", strconv.Itoa(port)) + "/healthz"
	eventually(t, 10*time.Second, "health port on the pod IP", func() bool {
		resp, err := http.Get(podURL) //nolint:noctx // a test on loopback
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
			t.Errorf("the health port also answers on %s: it listens on more than the pod IP", host)
		}
	}
}
