package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/mountinfo"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// requireMounts stops the test unless tmpfs can be mounted here (root in a
// mount namespace that allows it): it fails under CI and skips elsewhere,
// naming the capability (see testenv.RequireCapability). It unmounts
// everything left under root when the test ends, also on failure.
func requireMounts(t testing.TB, root string) {
	t.Helper()
	t.Cleanup(func() { unmountUnder(t, root) })
	testenv.RequireCapability(t, "tmpfs mounts", probeTmpfs(t, root))
}

// probeTmpfs mounts and unmounts a tmpfs under root; it returns why that is
// not possible here, and fails t for errors that are not about capability.
func probeTmpfs(t testing.TB, root string) error {
	t.Helper()
	if err := testenv.AsRoot(); err != nil {
		return fmt.Errorf("real tmpfs mounts need root: %w", err)
	}
	probe := filepath.Join(root, "probe")
	if err := os.MkdirAll(probe, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (SystemMounter{}).MountTmpfs(probe); err != nil {
		return fmt.Errorf("%w (run as root with CAP_SYS_ADMIN in a mount namespace that allows tmpfs mounts, e.g. not in an unprivileged container)", err)
	}
	if err := (SystemMounter{}).Unmount(probe); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
	return nil
}

// mountsUnder lists the mount points below root from the mount table,
// deepest first.
func mountsUnder(t testing.TB, root string) []string {
	t.Helper()
	all, err := mountinfo.Under(mountinfo.Self, root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mp := range all {
		if mp != root {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unmountUnder(t testing.TB, root string) {
	for _, mp := range mountsUnder(t, root) {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("cleanup: unmount %s: %v", mp, err)
		}
	}
}

// ephemeralController stands in for what kubelet does for an inline CSI
// volume: csi-sanity obtains volumes through CreateVolume, so this returns
// a volume whose context is the configured test parameters, which is the
// volume context kubelet would pass. It is served on its own socket next to
// the shim's Identity service and announces no controller capabilities, so
// the suite's controller tests skip themselves; the shim advertises no
// controller service.
type ephemeralController struct {
	csi.UnimplementedControllerServer
}

func (ephemeralController) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{}, nil
}

func (ephemeralController) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: "csi-" + req.GetName(), VolumeContext: req.GetParameters()}}, nil
}

func (ephemeralController) DeleteVolume(context.Context, *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	return &csi.DeleteVolumeResponse{}, nil
}

// readOnlyPublish marks NodePublishVolume requests that carry a secrets
// volume context read-only, as kubelet does for this driver (the pod's csi
// volume has readOnly: true, which the shim requires); csi-sanity's helpers
// publish read-write.
func readOnlyPublish(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*csi.NodePublishVolumeRequest); ok && r.GetVolumeContext()[inject.ClassAttribute] != "" {
		r = proto.Clone(r).(*csi.NodePublishVolumeRequest)
		r.Readonly = true
		req = r
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestSanity runs the csi-sanity suite against the shim over a unix socket,
// with real tmpfs mounts under a temporary kubelet root.
func TestSanity(t *testing.T) {
	root := shortDir(t)
	requireMounts(t, root)

	prov := newTestProvider("test", map[string]string{"db-password": "s3cr3t"})
	status := &statusLog{}
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(spcObject("sanity", "db", "test", map[string]string{"k": "v"})).Build()
	sock := filepath.Join(root, "plugins", DriverName, "csi.sock")
	d, err := NewDriver(Options{
		NodeID: "sanity-node", KubeletRootDir: root, Endpoint: "unix://" + sock, RegistrationDir: "-",
		EnableRotation: true, Providers: provider.NewSet(prov),
	}, Deps{Mounter: SystemMounter{}, Classes: c, Status: status})
	if err != nil {
		t.Fatal(err)
	}
	d.SetReady()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	ctrlSock := filepath.Join(root, "controller.sock")
	l, err := listenUnix(ctrlSock)
	if err != nil {
		t.Fatal(err)
	}
	cs := grpc.NewServer()
	csi.RegisterControllerServer(cs, ephemeralController{})
	csi.RegisterIdentityServer(cs, d)
	go func() { _ = cs.Serve(l) }()
	t.Cleanup(cs.Stop)
	waitFor(t, "the CSI socket", func() bool { _, err := os.Stat(sock); return err == nil })

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.ControllerAddress = "unix://" + ctrlSock
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(readOnlyPublish))
	podDir := filepath.Join(root, "pods", "sanity-uid", "volumes", "kubernetes.io~csi")
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg.TargetPath = filepath.Join(podDir, "secrets")
	cfg.StagingPath = filepath.Join(root, "staging")
	cfg.TestVolumeParameters = map[string]string{
		inject.ClassAttribute:    "db",
		plugin.KeyPodNamespace:   "sanity",
		plugin.KeyPodName:        "sanity-pod",
		plugin.KeyPodUID:         "sanity-uid",
		plugin.KeyServiceAccount: "default",
		plugin.KeyEphemeral:      "true",
		AttrTokens:               `{"vault":{"token":"sanity-token","expirationTimestamp":"2030-01-01T00:00:00Z"}}`,
	}
	// The shim is a node plugin: the suite's "[Controller Server]" specs
	// test a controller service it does not have (the stand-in above only
	// creates volumes for the node specs), so they are skipped; everything
	// else runs as written.
	sc := sanity.GinkgoTest(&cfg)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suite, reporter := ginkgo.GinkgoConfiguration()
	suite.SkipStrings = append(suite.SkipStrings, `\[Controller Server\]`)
	ginkgo.RunSpecs(t, "csi-sanity: node CSI shim", suite, reporter)
	sc.Finalize()

	// The suite must have published for real through the provider.
	if prov.count() == 0 {
		t.Fatal("csi-sanity never reached the provider: no NodePublishVolume succeeded")
	}
	if tok, _ := prov.lastRequest().Identity.Tokens.Token(ctx, "vault"); tok != "sanity-token" {
		t.Errorf("token reaching the provider = %q", tok)
	}
	sts := status.all()
	if len(sts) == 0 || sts[0].Status.TargetPath != filepath.Join(cfg.TargetPath, "target") {
		t.Errorf("status records = %+v", sts)
	}
	if left := mountsUnder(t, root); len(left) != 0 {
		t.Errorf("mounts left after the suite: %v", left)
	}
}

// TestRealMount publishes with real tmpfs mounts: the target is a tmpfs
// mount point with the files, a republish does not stack a second mount, a
// failing first publish leaves nothing mounted, and unpublish removes it
// all.
func TestRealMount(t *testing.T) {
	root := shortDir(t)
	requireMounts(t, root)
	prov := newTestProvider("test", map[string]string{"db-password": "s3cr3t", "nested/cert.pem": "CERT"})
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(spcObject("team-a", "db", "test", nil)).Build()
	clk := newClock()
	d, err := NewDriver(Options{NodeID: "n", KubeletRootDir: root, RegistrationDir: "-", EnableRotation: true, Providers: provider.NewSet(prov)},
		Deps{Mounter: SystemMounter{}, Classes: c, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	target := kubeletTarget(t, root, "uid-1", "secrets")
	if _, err := d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(target, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("target is not a tmpfs (type %x, %v)", fs.Type, err)
	}
	if got := readVolume(t, target); got["db-password"] != "s3cr3t" || got["nested/cert.pem"] != "CERT" {
		t.Errorf("volume = %v", got)
	}
	clk.Step(10 * 60e9)
	if _, err := d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, root); len(m) != 1 || m[0] != target {
		t.Errorf("mounts after republish = %v, want exactly the target once", m)
	}
	if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts after unpublish = %v", m)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target after unpublish: %v", err)
	}

	prov.set(nil, &provider.Error{Class: "team-a/db", Provider: "test", Reason: provider.ReasonNotFound, Err: errors.New("no such secret")})
	target2 := kubeletTarget(t, root, "uid-2", "secrets")
	if _, err := d.NodePublishVolume(ctx, publishReq(target2, web)); err == nil {
		t.Fatal("publish succeeded with a failing provider")
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("a failed first publish left mounts: %v", m)
	}
}
