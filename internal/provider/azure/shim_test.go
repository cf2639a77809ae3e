package azure

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/scheme"
)

// dirMounter stands for tmpfs: the target directory is the mount.
type dirMounter struct {
	mu sync.Mutex
	m  map[string]bool
}

func (d *dirMounter) IsMountPoint(p string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[p], nil
}

func (d *dirMounter) MountTmpfs(p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[p] = true
	return nil
}

func (d *dirMounter) Unmount(p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, p)
	return nil
}

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
	api := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(class).Build()
	root := t.TempDir()
	d, err := ssicsi.NewDriver(ssicsi.Options{NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix:///unused.sock", Providers: provider.NewSet(r.p)},
		ssicsi.Deps{Mounter: &dirMounter{m: map[string]bool{}}, Classes: api, APIReader: api})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "pods", "uid-1", "volumes", "kubernetes.io~csi", "secrets", "mount")
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		t.Fatal(err)
	}
	_, err = d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: "v1", TargetPath: target, Readonly: true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		VolumeContext: map[string]string{inject.ClassAttribute: "sp", plugin.KeyPodNamespace: r.ns, plugin.KeyPodName: "web-0", plugin.KeyPodUID: "uid-1", plugin.KeyServiceAccount: "app", plugin.KeyEphemeral: "true"},
		Secrets:       map[string]string{"clientid": spClientID, "clientsecret": spSecret1},
	})
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
