//go:build e2e

package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
)

// TestFSGroupModes (issue 14, finding 5): with an fsGroup, an app running
// as another user than the agent reads a 0440 file through the group and
// cannot read a 0400 one. Before the agent kept the setgid bit of the
// fsGroup volume root, the files got the agent's own group and the app
// read neither.
func TestFSGroupModes(t *testing.T) {
	setupSeed(t)
	requireProduct(t)
	ctx := context.Background()
	const (
		class     = "vault-fsgroup-modes"
		fsGroup   = 3000
		appUser   = 1001
		agentUser = 2002
	)
	objs, err := readSeed("vault-secret-provider.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spc := objs[0]
	spc.SetName(class)
	_ = unstructured.SetNestedField(spc.Object, `- objectName: "db-password"
  secretPath: "secret/data/myapp/database"
  secretKey: "password"
  filePermission: 0440
- objectName: "api-token"
  secretPath: "secret/data/myapp/api"
  secretKey: "token"
  filePermission: 0400
`, "spec", "parameters", "objects")
	if err := applyObjects(ctx, []*unstructured.Unstructured{spc}); err != nil {
		t.Fatal(err)
	}

	p := appPod(seedNamespace, "fsgroup-modes", class)
	p.Annotations = map[string]string{"secrets-store-injector.io/agent-run-as-user": strconv.Itoa(agentUser)}
	p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](fsGroup)}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](appUser), RunAsGroup: ptr.To[int64](appUser)}
	created := createPod(t, p)
	if !injected(created) {
		t.Fatalf("pod not injected: %v", created.Annotations)
	}
	if a := agentContainer(created); a == nil || a.SecurityContext == nil || a.SecurityContext.RunAsUser == nil || *a.SecurityContext.RunAsUser != agentUser {
		t.Fatalf("the agent does not run as user %d, so the test would not show the group rule: %+v", agentUser, a)
	}
	waitPod(t, seedNamespace, p.Name, firstFetchTimeout+90*time.Second, "ready", podReady)

	st, err := getAppState(ctx, seedNamespace, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Initial["db-password"]; got != currentPassword() {
		t.Errorf("app (user %d, fsGroup %d) read db-password (0440) as %q, want the password: the file lacks the fsGroup", appUser, fsGroup, got)
	}
	if got, ok := st.Initial["api-token"]; ok {
		t.Errorf("app (user %d) read api-token (0400, the agent's user only): %d bytes", appUser, len(got))
	}
}
