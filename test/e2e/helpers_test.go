//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/ssinjector/ssi/internal/chart"
)

// applyObjects creates or updates objects with server-side apply, like
// `kubectl apply --server-side`.
func applyObjects(ctx context.Context, objs []*unstructured.Unstructured) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cl.RESTConfig)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cl.RESTConfig)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		var m *meta.RESTMapping
		// A CRD applied just before may take a moment to be served.
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			mapper.Reset()
			var err error
			m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("no API for %s: %w", gvk, err)
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		force := true
		if _, err := ri.Patch(ctx, obj.GetName(), "application/apply-patch+yaml", data, metav1.PatchOptions{FieldManager: "ssi-e2e", Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

// applyFile applies a YAML file as it is.
func applyFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	objs, err := chart.Split(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return applyObjects(ctx, objs)
}

// namespace creates a namespace with labels; it is deleted when the test
// ends (unless the test failed, to keep it for the state dump).
func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cl.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		_ = cl.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// waitPod waits until cond holds for the pod, failing with the pod's
// status and events on timeout.
func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cl.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, nil
		}
		pod = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %s: not within %s\n%s", ns, name, what, timeout, describe(ns, name))
	}
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describe renders what `kubectl describe pod` shows about why a pod is
// not running: phase, conditions, container states and events.
func describe(ns, name string) string {
	ctx := context.Background()
	var b strings.Builder
	p, err := cl.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("get pod: %v", err)
	}
	fmt.Fprintf(&b, "Status: %s %s %s\n", p.Status.Phase, p.Status.Reason, p.Status.Message)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, "Condition %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			fmt.Fprintf(&b, "Container %s: ready=%v restarts=%d", s.Name, s.Ready, s.RestartCount)
			if w := s.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
			}
			if r := s.State.Running; r != nil {
				fmt.Fprintf(&b, " running since %s", r.StartedAt.Format(time.RFC3339))
			}
			if x := s.State.Terminated; x != nil {
				fmt.Fprintf(&b, " terminated %s (exit %d): %s", x.Reason, x.ExitCode, x.Message)
			}
			if x := s.LastTerminationState.Terminated; x != nil {
				fmt.Fprintf(&b, " last: %s (exit %d): %s", x.Reason, x.ExitCode, x.Message)
			}
			b.WriteString("\n")
		}
	}
	for _, e := range podEvents(ns, name) {
		fmt.Fprintf(&b, "Event %s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

func podEvents(ns, name string) []corev1.Event {
	evs, err := cl.Clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + name,
	})
	if err != nil {
		return nil
	}
	return evs.Items
}

// podLogs returns a container's log.
func podLogs(t *testing.T, ns, pod, container string) string {
	t.Helper()
	b, err := cl.Clientset.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s/%s[%s]: %v", ns, pod, container, err)
	}
	return string(b)
}

// proxyGet fetches path from a pod's port through the API server's pod
// proxy.
//
// The API server answers 503 (ServiceUnavailable) while it cannot reach
// the pod yet, e.g. right after the pod turned Ready; such answers are
// retried for up to 10s, anything else is returned at once.
func proxyGet(ctx context.Context, ns, pod string, port int, path string) ([]byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := cl.Clientset.CoreV1().Pods(ns).ProxyGet("http", pod, fmt.Sprint(port), path, nil).DoRaw(ctx)
		if err == nil || !apierrors.IsServiceUnavailable(err) || time.Now().After(deadline) {
			return b, err
		}
		select {
		case <-ctx.Done():
			return b, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
