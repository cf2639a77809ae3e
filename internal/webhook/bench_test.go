package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ssinjector/ssi/internal/inject"
)

// percentile returns the p-th percentile (0-100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// cpuTime is the CPU time (user and system) this process used so far; the
// figure per admission does not depend on how busy the machine is.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// Latency percentiles depend on whether the process gets a CPU when a
// request arrives: on an oversubscribed machine they measure the scheduler.
// To measure the webhook as a pod with guaranteed CPU would see it, give
// the test binary priority, e.g.
//
//	go test -c -o /tmp/webhook.test ./internal/webhook
//	cd internal/webhook && chrt -f 10 /tmp/webhook.test -test.run '^$' -test.bench Admission -test.benchmem
//
// cpu-ms/admission does not depend on the machine's load.

// BenchmarkAdmission measures the handler in-process, as controller-runtime
// calls it after reading the request body: decoding, lookups (an in-memory
// Lookup), the rewrite, and the JSON patch computation. allocs/op is the
// allocations per admission.
func BenchmarkAdmission(b *testing.B) {
	for _, bc := range []struct{ name, class string }{
		{"inject-seed-aws", "aws-secrets"},
		{"inject-seed-vault", "vault-secrets"},
		{"skip-not-enabled", "aws-secrets"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := seedLookup(b)
			if bc.name == "skip-not-enabled" {
				l.labels = nil
			}
			h, _ := newTestHandler(l, admissionregistrationv1.Ignore)
			req := request(b, seedPod(b, bc.class))
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp := h.Handle(ctx, req)
				lat = append(lat, time.Since(start))
				if !resp.Allowed {
					b.Fatalf("denied: %v", resp.Result)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/admission")
			reportLatency(b, lat)
		})
	}
}

// BenchmarkAdmissionHTTPS measures admissions over HTTPS against the real
// server run inside the test process (TLS, controller-runtime's handler,
// informer-cache lookups against a real kube-apiserver) under a steady
// open-loop load of SSI_BENCH_RATE admissions per second (default 200) for
// SSI_BENCH_SECONDS (default 5). Latency is measured at the client, as the
// API server sees it; allocs/admission counts every allocation of this
// process (server and load generator) divided by the admissions, and
// cpu-ms/admission the CPU time of this process: server, TLS both ways and
// the load generator. BenchmarkAdmissionServer measures the shipped
// binary's CPU alone.
func BenchmarkAdmissionHTTPS(b *testing.B) {
	h := startHarness(b)
	ns := h.seedNamespace(b, map[string]string{inject.LabelInjection: inject.LabelValueEnabled})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(h.hook.LocalServingCAData)
	var before, after runtime.MemStats
	r := admissionLoad(b, "https://"+h.addr+DefaultPath, roots, ns, func() time.Duration {
		runtime.GC()
		runtime.ReadMemStats(&before)
		return cpuTime(b)
	}, func() time.Duration {
		c := cpuTime(b)
		runtime.ReadMemStats(&after)
		return c
	})
	b.ReportMetric(float64(r.total)/r.elapsed.Seconds(), "admissions/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(r.total), "allocs/admission")
	b.ReportMetric(float64(r.cpu.Microseconds())/1000/float64(r.total), "cpu-ms/admission")
	reportLatency(b, r.lat)
}

// loadResult is what admissionLoad measured.
type loadResult struct {
	total   int
	elapsed time.Duration
	cpu     time.Duration
	lat     []time.Duration
}

// admissionLoad sends the seed guide's AWS pod for namespace ns to the
// webhook at url, as the API server does (an AdmissionReview over HTTPS,
// new connections reused), at SSI_BENCH_RATE admissions per second for
// SSI_BENCH_SECONDS, open loop: request i is sent at start+i/rate however
// long earlier ones take. The CPU figure is cpuAfter()-cpuBefore(), read
// around the measured load (after 50 warm-up admissions). Every admission
// must be allowed with a patch.
func admissionLoad(b *testing.B, url string, roots *x509.CertPool, ns string, cpuBefore, cpuAfter func() time.Duration) loadResult {
	b.Helper()
	rate := envInt("SSI_BENCH_RATE", 200)
	seconds := envInt("SSI_BENCH_SECONDS", 5)
	pod := seedPod(b, "aws-secrets")
	pod.Namespace = ns
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := func(i int) []byte {
		r := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID:       types.UID("bench-" + strconv.Itoa(i)),
				Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Namespace: ns, Operation: admissionv1.Create,
			},
		}
		r.Request.Object.Raw = raw
		out, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}}
	defer client.CloseIdleConnections()
	post := func(body []byte) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
			return fmt.Errorf("not injected: %+v", out.Response)
		}
		return nil
	}
	// Warm up connections and caches.
	for i := 0; i < 50; i++ {
		if err := post(review(i)); err != nil {
			b.Fatal(err)
		}
	}
	total := rate * seconds
	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = review(i)
	}
	lat := make([]time.Duration, total)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuBefore()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < total; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			if err := post(bodies[i]); err != nil {
				errs <- err
			}
			lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuAfter() - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("admission failed: %v", err)
	}
	return loadResult{total: total, elapsed: elapsed, cpu: cpu, lat: lat}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
