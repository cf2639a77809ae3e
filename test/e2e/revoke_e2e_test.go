//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRevokeOnShutdownInPod (issue 16) deletes two injected pods the way a
// rollout does (the default grace period, so kubelet sends SIGTERM): the
// agent of the pod annotated secrets-store-injector.io/revoke-on-shutdown
// revokes its Vault token before it exits, the other pod's token stays.
// Each pod has a namespace of its own, as Vault's Kubernetes auth records
// the service account's namespace, not the pod, in the token's metadata.
// The dynamic-secret half (PostgreSQL credentials refused after SIGTERM)
// runs against a real Vault and PostgreSQL in internal/agent's
// TestVaultRevokeOnShutdown.
func TestRevokeOnShutdownInPod(t *testing.T) {
	setupUpstream(t)
	cases := []struct {
		ns     string
		revoke bool
	}{{"up-revoke-on", true}, {"up-revoke-off", false}}
	for _, c := range cases {
		applyClasses(t, upClass(c.ns, "e2e-revoke", []upObject{{"username", "myapp/up-user"}}))
		p := upPod(c.ns, "revoke", false, []string{"e2e-revoke"}, nil)
		if c.revoke {
			p.Annotations = map[string]string{"secrets-store-injector.io/revoke-on-shutdown": "true"}
		}
		st := runReady(t, p, false)
		wantFiles(t, st, map[string]string{"secrets-store-0/username": upUser})
		if n := vaultTokensOf(t, c.ns); n == 0 {
			t.Fatalf("%s: no Vault token of the namespace's service account while the pod runs", c.ns)
		}
	}
	for _, c := range cases {
		start := time.Now()
		if err := deletePodAndWait(c.ns, "revoke", metav1.DeleteOptions{}, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		n := vaultTokensOf(t, c.ns)
		switch {
		case c.revoke && n != 0:
			t.Errorf("with revoke-on-shutdown, %d Vault tokens of %s outlived the pod", n, c.ns)
		case !c.revoke && n == 0:
			t.Errorf("without revoke-on-shutdown the pod's Vault token of %s was revoked", c.ns)
		}
		fmt.Printf("e2e: revoke-on-shutdown=%v: pod gone in %s, %d Vault tokens of its namespace left\n",
			c.revoke, time.Since(start).Round(time.Millisecond), n)
	}
}

// vaultTokensOf counts the live Vault tokens that Kubernetes auth issued to
// a service account of namespace ns (the suite's Vault client is root).
func vaultTokensOf(t *testing.T, ns string) int {
	t.Helper()
	list, err := vault.Client.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatalf("vault list auth/token/accessors: %v", err)
	}
	if list == nil {
		return 0
	}
	keys, _ := list.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		acc, _ := k.(string)
		look, err := vault.Client.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": acc})
		if err != nil || look == nil {
			continue // revoked or expired since the list
		}
		if meta, _ := look.Data["meta"].(map[string]any); meta != nil && meta["service_account_namespace"] == ns {
			n++
		}
	}
	return n
}
