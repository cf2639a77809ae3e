package secretsync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ssinjector/ssi/internal/provider"
)

// BenchmarkPodToSecret measures, on the real API server, the time from
// the creation of the first pod consuming a class to its Secret existing:
// pod event, TokenRequest bound to the pod, fetch (in-memory fake), Secret
// create. Reports ms per pod.
func BenchmarkPodToSecret(b *testing.B) {
	env := controlPlane(b)
	fake := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
	h := startController(b, env, nil, Options{Providers: provider.NewSet(fake), Logger: logr.FromSlogHandler(slog.DiscardHandler)}, nil)
	defer h.stop()
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		ns := env.Namespace(b, "bench", nil)
		serviceAccount(b, env, ns, "app", nil)
		if err := env.Client.Create(ctx, vaultClass(b, ns, "db", dbPasswordSecret)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := env.Client.Create(ctx, csiPod(ns, "app-0", "app", "db")); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := getSecret(env, ns, "db"); err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no Secret in %s after 30s", ns)
			}
			time.Sleep(2 * time.Millisecond)
		}
		total += time.Since(start)
		wipe(env, ns)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pod-to-secret")
}

// BenchmarkTrimPod reports how much of a rewritten pod the controller's
// pod cache keeps.
func BenchmarkTrimPod(b *testing.B) {
	pod := injectedPod(b, "ns", "web-5d8f-abcde", "app", "db", "tls")
	app := &pod.Spec.Containers[0]
	for i := range 20 {
		app.Env = append(app.Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", i), Value: "some configuration value of moderate length"})
	}
	app.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	pod.Status.Conditions = make([]corev1.PodCondition, 5)
	pod.Status.ContainerStatuses = make([]corev1.ContainerStatus, 2)
	full, _ := json.Marshal(pod)
	var trimmed []byte
	for b.Loop() {
		trimmed, _ = json.Marshal(TrimPod(pod))
	}
	b.ReportMetric(float64(len(full)), "full-bytes")
	b.ReportMetric(float64(len(trimmed)), "trimmed-bytes")
}
