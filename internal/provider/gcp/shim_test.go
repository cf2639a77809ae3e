package gcp

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

// TestShimKeyJSON is the node shim's path: NodePublishVolume carrying the
// nodePublishSecretRef Secret's key.json in its secrets, served by the gcp
// provider against the fake's OAuth 2.0 token endpoint and Secret Manager.
func TestShimKeyJSON(t *testing.T) {
	r := newRig(t)
	r.seed()
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	r.fake.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, r.fake, keyEmail)
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "keyed"}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "gcp", Parameters: map[string]string{"secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db.txt\n"}}}
	api := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(class).Build()
	root := t.TempDir()
	d, err := ssicsi.NewDriver(ssicsi.Options{NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix:///unused.sock", Providers: provider.NewSet(r.provider(true))},
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
		VolumeContext: map[string]string{inject.ClassAttribute: "keyed", plugin.KeyPodNamespace: r.ns, plugin.KeyPodName: "web-0", plugin.KeyPodUID: "uid-1", plugin.KeyServiceAccount: "app", plugin.KeyEphemeral: "true"},
		Secrets:       map[string]string{KeyJSONKey: key},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(target, "db.txt"))
	if err != nil || string(b) != "s3cr3t-db-2" {
		t.Fatalf("db.txt = %q, %v", b, err)
	}
	if n := r.fake.calls.Snapshot()["oauth2 jwt-bearer token"]; n != 1 {
		t.Errorf("jwt-bearer token requests = %d, want 1", n)
	}
}
