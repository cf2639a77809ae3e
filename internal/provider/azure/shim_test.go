package azure

import (
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestShimServicePrincipal is the node shim's path: NodePublishVolume
// carrying the nodePublishSecretRef Secret's keys in its secrets (kubelet
// read the Secret; the shim reads none), served by the azure provider
// against the Entra and Key Vault fakes with client credentials.
func TestShimServicePrincipal(t *testing.T) {
	r := newRig(t)
	r.fake.mu.Lock()
	r.fake.principals[spClientID] = spSecret1
	r.fake.access[spClientID] = true
	r.fake.mu.Unlock()
	r.fake.put("secrets", "db", kvVer{value: "shim-sp-value"})
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "sp"}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "azure", Parameters: map[string]string{"keyvaultName": "kv-test", "tenantId": r.fake.tenant, "objects": objectsParam("objectName: db\nobjectType: secret",
			// A filePermission upstream cannot parse: written 0000, as upstream (docs/providers/azure.md).
			"objectName: db\nobjectType: secret\nobjectAlias: zero\nfilePermission: \"0900\"")}}}
	shim := providertest.NewShim(t, ssicsi.Options{Providers: provider.NewSet(r.p)}, class)
	target, err := shim.Publish(class, "uid-1", map[string]string{"clientid": spClientID, "clientsecret": spSecret1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(target, "db"))
	if err != nil || string(b) != "shim-sp-value" {
		t.Fatalf("db = %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(target, "zero")); err != nil || st.Mode().Perm() != 0 {
		t.Errorf("zero: %v, %v; want mode 0000", st, err)
	}
	if n := r.fake.calls.Snapshot()["entra client secret"]; n != 1 {
		t.Errorf("client-secret token requests = %d, want 1", n)
	}
}
