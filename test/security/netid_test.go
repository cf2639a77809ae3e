package security

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/scheme"
)

// netidMounter is the node's mount table for the shim under attack: it
// "mounts" by recording, on a directory that exists (following links, as
// mount(2) does), so whatever the shim writes lands where mount(2) would
// have put the tmpfs.
type netidMounter struct {
	mounted map[string]bool
	mounts  int
}

func (m *netidMounter) IsMountPoint(p string) (bool, error) { return m.mounted[p], nil }

func (m *netidMounter) MountTmpfs(p string) error {
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return errors.New("mount point is not a directory")
	}
	m.mounted[p] = true
	m.mounts++
	return nil
}

func (m *netidMounter) Unmount(p string) error { delete(m.mounted, p); return nil }

// netidShim is the node shim as `ssi-agent csi` builds it (the built-in
// providers of a shared process, default operator choices) over a kubelet
// root in a temporary directory, with the attacker's classes.
func netidShim(t *testing.T, classes ...client.Object) (*ssicsi.Driver, *netidMounter, string) {
	t.Helper()
	root := t.TempDir()
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(classes...).Build()
	mnt := &netidMounter{mounted: map[string]bool{}}
	set := builtin.New(nil, builtin.OutsidePod, time.Minute, limits.Config{}, builtin.Shared{})
	t.Cleanup(func() { _ = set.Close() })
	d, err := ssicsi.NewDriver(ssicsi.Options{NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix:///unused.sock",
		EnableRotation: true, Providers: set}, ssicsi.Deps{Mounter: mnt, Classes: c, APIReader: c})
	if err != nil {
		t.Fatal(err)
	}
	return d, mnt, root
}

func netidClass(ns, name, provider string, params map[string]string) *ssiv1.SecretProviderClass {
	o := &ssiv1.SecretProviderClass{}
	o.Namespace, o.Name = ns, name
	o.Spec.Provider = ssiv1.Provider(provider)
	o.Spec.Parameters = params
	return o
}

// netidPublish is kubelet's NodePublishVolume for a pod of namespace
// tenant that the webhook did not rewrite.
func netidPublish(root, podUID, class, tokens string) *csi.NodePublishVolumeRequest {
	vc := map[string]string{
		inject.ClassAttribute:    class,
		plugin.KeyPodNamespace:   "tenant",
		plugin.KeyPodName:        "attacker",
		plugin.KeyPodUID:         podUID,
		plugin.KeyServiceAccount: "default",
	}
	if tokens != "" {
		vc[ssicsi.AttrTokens] = tokens
	}
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + podUID,
		TargetPath: filepath.Join(root, "pods", podUID, "volumes", "kubernetes.io~csi", "secrets", "mount"),
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: vc,
	}
}

// TestNetidShimDoesNotLendItsIdentity is finding 6: a tenant writes a class
// that asks for "the identity of whoever fetches" and runs a pod the
// webhook does not rewrite (opted out), so the node shim fetches, with the
// node's managed identity or application default credentials, whatever
// that identity can read, into the tenant's volume. The shim must refuse
// the class, naming it, before any credential is used. (The sync
// controller builds the same providers with the same call; see
// internal/provider/builtin TestProcessIdentity.)
func TestNetidShimDoesNotLendItsIdentity(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
	classes := map[string]*ssiv1.SecretProviderClass{
		"azure useVMManagedIdentity": netidClass("tenant", "node-kv", "azure", map[string]string{
			"useVMManagedIdentity": "true", "keyvaultName": "platform-kv", "tenantID": "t",
			"objects": "array:\n  - |\n    objectName: cluster-admin-credentials\n    objectType: secret\n"}),
		"gcp auth provider-adc": netidClass("tenant", "node-adc", "gcp", map[string]string{
			"auth": "provider-adc", "secrets": "- resourceName: projects/platform/secrets/root-ca-key/versions/latest\n  path: key\n"}),
	}
	for name, class := range classes {
		t.Run(name, func(t *testing.T) {
			d, mnt, root := netidShim(t, class)
			// A cancelled context: a fetch the shim does not refuse stops
			// before it reaches any network (and this test fails).
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req := netidPublish(root, "uid-"+class.Name, class.Name, "")
			if err := os.MkdirAll(filepath.Dir(req.TargetPath), 0o750); err != nil {
				t.Fatal(err)
			}
			_, err := d.NodePublishVolume(ctx, req)
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("publish = %v, want FailedPrecondition refusing the process's identity", err)
			}
			for _, want := range []string{"tenant/" + class.Name, "unless the operator allows it", "--allow-process-identity"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if mnt.mounted[req.TargetPath] {
				t.Error("the volume stayed mounted after the refusal")
			}
		})
	}
}

// TestNetidVaultRedirectIsNotFollowed is finding 9 (redirects): a tenant's
// class names a Vault address the tenant controls. It answers the login
// like Vault, then redirects the secret read to an internal endpoint (here
// another loopback server; in a cluster the cloud metadata server, another
// tenant's Vault, the API server). The shim must not follow it: nothing of
// the internal answer may reach the volume, and the internal endpoint must
// never see a request (which would carry the Vault token header).
func TestNetidVaultRedirectIsNotFollowed(t *testing.T) {
	// One attempt: the Vault client would retry the refused redirect
	// twice, a second or more apart, to the same answer.
	t.Setenv("VAULT_MAX_RETRIES", "0")
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		internalHits.Add(1)
		_, _ = io.WriteString(w, `{"data":{"data":{"iam":"node-credentials-from-an-internal-endpoint"},"metadata":{"version":1}}}`)
	}))
	defer internal.Close()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/login") {
			_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "s.tenant", "lease_duration": 3600, "renewable": false}})
			return
		}
		http.Redirect(w, r, internal.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer evil.Close()

	class := netidClass("tenant", "redirect", "vault", map[string]string{
		"vaultAddress": evil.URL, "roleName": "tenant",
		"objects": "- objectName: loot\n  secretPath: secret/data/loot\n"})
	d, _, root := netidShim(t, class)
	req := netidPublish(root, "uid-redirect", "redirect", `{"":{"token":"tenant-jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}`)
	if err := os.MkdirAll(filepath.Dir(req.TargetPath), 0o750); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.NodePublishVolume(ctx, req)
	if err == nil {
		b, _ := os.ReadFile(filepath.Join(req.TargetPath, "loot"))
		t.Fatalf("the volume was published through a redirect to another host; it holds %q", b)
	}
	if !strings.Contains(err.Error(), "redirect refused") {
		t.Errorf("error %q does not say the redirect was refused", err)
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal endpoint received %d requests", n)
	}
}

// TestNetidShimRefusesPlantedTargetSymlink is finding 9 (symlinks): with
// write access to a pod's volume directory (another hostPath pod, a
// compromised node user), an attacker plants a symbolic link at the
// target path itself, pointing at a directory of theirs. The shim must
// refuse it: mount(2) follows it, so the tmpfs, and the victim's secrets,
// would land in the attacker's directory.
func TestNetidShimRefusesPlantedTargetSymlink(t *testing.T) {
	d, mnt, root := netidShim(t, netidClass("tenant", "db", "vault", map[string]string{
		"vaultAddress": "http://127.0.0.1:1", "roleName": "r", "objects": "- objectName: db\n  secretPath: secret/data/db\n"}))
	req := netidPublish(root, "uid-victim", "db", "")
	if err := os.MkdirAll(filepath.Dir(req.TargetPath), 0o750); err != nil {
		t.Fatal(err)
	}
	loot := t.TempDir()
	if err := os.Symlink(loot, req.TargetPath); err != nil {
		t.Fatal(err)
	}
	_, err := d.NodePublishVolume(context.Background(), req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("publish = %v, want FailedPrecondition naming the symbolic link", err)
	}
	if mnt.mounts != 0 {
		t.Errorf("mounted %d times over the planted link", mnt.mounts)
	}
	if entries, _ := os.ReadDir(loot); len(entries) != 0 {
		t.Errorf("the attacker's directory received %d entries", len(entries))
	}
}
