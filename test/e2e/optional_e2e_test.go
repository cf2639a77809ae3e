//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ssinjector/ssi/internal/spc"
)

// TestOptionalObjectInPod (issue 16) runs a class with one required and one
// optional Vault object on both paths: the optional object is missing when
// the pod starts, is created, then deleted (KV v2 delete). The pod becomes
// Ready without it, its file appears after the creation and is removed after
// the deletion, and no container of the pod restarts or fails meanwhile.
func TestOptionalObjectInPod(t *testing.T) {
	setupUpstream(t)
	for i, path := range upPaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			ns := "up-opt-" + path.name
			vpath := fmt.Sprintf("myapp/up-opt-%d-%d", i+1, time.Now().UnixNano())
			class := upClass(ns, "e2e-optional", []upObject{{"username", "myapp/up-user"}, {"feature", vpath}})
			class.SetAnnotations(map[string]string{spc.AnnotationOptionalObjects: "feature"})
			applyClasses(t, class)
			p := upPod(ns, "optional-object", path.shim, []string{"e2e-optional"}, nil)
			st := runReady(t, p, path.shim)
			wantFiles(t, st, map[string]string{"secrets-store-0/username": upUser})
			if _, ok := st.Files["secrets-store-0/feature"]; ok {
				t.Fatal("the missing optional object has a file")
			}

			limit := 3*rotationInterval + 30*time.Second
			waitFile := func(what string, cond func(files map[string]string) bool) time.Duration {
				t.Helper()
				start := time.Now()
				var last map[string]string
				err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, limit, true, func(ctx context.Context) (bool, error) {
					s, err := getAppState(ctx, ns, p.Name)
					if err != nil {
						return false, nil
					}
					last = s.Files
					return cond(s.Files), nil
				})
				if err != nil {
					t.Fatalf("%s: not within %s (files %v)", what, limit, keys(last))
				}
				return time.Since(start)
			}

			if err := vault.Put(ctx, vpath, map[string]any{"username": "on"}); err != nil {
				t.Fatal(err)
			}
			appeared := waitFile("the optional object's file appears", func(f map[string]string) bool { return f["secrets-store-0/feature"] == "on" })

			if err := vault.Client.KVv2("secret").Delete(ctx, vpath); err != nil {
				t.Fatalf("vault kv delete secret/%s: %v", vpath, err)
			}
			removed := waitFile("the deleted optional object's file is removed", func(f map[string]string) bool {
				_, ok := f["secrets-store-0/feature"]
				return !ok && f["secrets-store-0/username"] == upUser
			})

			got, err := cl.Clientset.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !podReady(got) {
				t.Errorf("pod %s is no longer Ready: %v", p.Name, got.Status.Conditions)
			}
			for _, list := range [][]corev1.ContainerStatus{got.Status.InitContainerStatuses, got.Status.ContainerStatuses} {
				for _, c := range list {
					if c.RestartCount != 0 {
						t.Errorf("container %s restarted %d times", c.Name, c.RestartCount)
					}
				}
			}
			// A readiness probe answered before the first fetch (Unhealthy)
			// is not a failure; a failed mount or rotation is.
			for _, e := range podEvents(ns, p.Name) {
				if e.Type == corev1.EventTypeWarning && e.Reason != "Unhealthy" {
					t.Errorf("warning event %s: %s", e.Reason, e.Message)
				}
			}
			fmt.Printf("e2e: optional object (%s): file appeared %s after the create, removed %s after the delete (rotation interval %s)\n",
				path.name, appeared.Round(time.Millisecond), removed.Round(time.Millisecond), rotationInterval)
		})
	}
}
