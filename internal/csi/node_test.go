package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
)

type harness struct {
	d      *Driver
	root   string
	mnt    *fakeMounter
	clk    *clocktesting.FakeClock
	prov   *testProvider
	status *statusLog
	events *record.FakeRecorder
}

func newHarness(t *testing.T, mod func(*Options), objs ...client.Object) *harness {
	t.Helper()
	h := &harness{
		root:   t.TempDir(),
		mnt:    newFakeMounter(),
		clk:    newClock(),
		prov:   newTestProvider("test", map[string]string{"db-password": "s3cr3t", "api-key": "k1"}),
		status: &statusLog{},
		events: record.NewFakeRecorder(100),
	}
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	o := Options{
		NodeID:               "node-1",
		KubeletRootDir:       h.root,
		Endpoint:             "unix:///unused.sock",
		EnableRotation:       true,
		RotationPollInterval: 2 * time.Minute,
		Providers:            provider.NewSet(h.prov),
	}
	if mod != nil {
		mod(&o)
	}
	d, err := NewDriver(o, Deps{Mounter: h.mnt, Classes: c, APIReader: c, Status: h.status, Events: h.events, Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// event returns the next recorded event, or "" when there is none.
func (h *harness) event() string {
	select {
	case e := <-h.events.Events:
		return e
	default:
		return ""
	}
}

var web = podVolume{ns: "team-a", pod: "web-0", uid: "uid-1", sa: "web", class: "db"}

func TestValidatePublish(t *testing.T) {
	h := newHarness(t, nil)
	good := func() *csi.NodePublishVolumeRequest {
		return publishReq(kubeletTarget(t, h.root, "uid-1", "secrets"), web)
	}
	tests := map[string]struct {
		mutate func(*csi.NodePublishVolumeRequest)
		msg    string
	}{
		"no volume id":  {func(r *csi.NodePublishVolumeRequest) { r.VolumeId = "" }, "volume_id is required"},
		"no target":     {func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "" }, "target_path is required"},
		"no capability": {func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = nil }, "volume_capability is required"},
		"block capability": {func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}, "block access"},
		"no context":         {func(r *csi.NodePublishVolumeRequest) { r.VolumeContext = nil }, "volume_context is empty"},
		"not read-only":      {func(r *csi.NodePublishVolumeRequest) { r.Readonly = false }, "readOnly: true"},
		"relative target":    {func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "pods/x/mount" }, "not absolute"},
		"target outside":     {func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "/etc/secrets" }, "not inside the kubelet root dir"},
		"target escapes":     {func(r *csi.NodePublishVolumeRequest) { r.TargetPath = h.root + "/pods/../../etc" }, "not inside the kubelet root dir"},
		"target is the root": {func(r *csi.NodePublishVolumeRequest) { r.TargetPath = h.root }, "not inside the kubelet root dir"},
		"no class":           {func(r *csi.NodePublishVolumeRequest) { delete(r.VolumeContext, inject.ClassAttribute) }, "volumeAttributes.secretProviderClass is not set"},
		"no pod namespace": {func(r *csi.NodePublishVolumeRequest) {
			delete(r.VolumeContext, "csi.storage.k8s.io/pod.namespace")
		}, "podInfoOnMount"},
		"no pod uid": {func(r *csi.NodePublishVolumeRequest) { delete(r.VolumeContext, "csi.storage.k8s.io/pod.uid") }, "pod.uid"},
		"bad tokens": {func(r *csi.NodePublishVolumeRequest) { r.VolumeContext[AttrTokens] = "{not json" }, "serviceAccount.tokens"},
		"bad tokens in secrets": {func(r *csi.NodePublishVolumeRequest) {
			r.Secrets = map[string]string{AttrTokens: "[1]"}
		}, "serviceAccount.tokens"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := good()
			tc.mutate(req)
			_, err := h.d.NodePublishVolume(context.Background(), req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want InvalidArgument containing %q", err, tc.msg)
			}
			if h.prov.count() != 0 || h.mnt.mounts != 0 {
				t.Errorf("an invalid request reached the provider (%d) or the mounter (%d)", h.prov.count(), h.mnt.mounts)
			}
		})
	}
}

func TestTargetSymlinkOutsideRoot(t *testing.T) {
	h := newHarness(t, nil)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(h.root, "pods")); err != nil {
		t.Fatal(err)
	}
	req := publishReq(filepath.Join(h.root, "pods", "uid-1", "mount"), web)
	if err := os.MkdirAll(filepath.Join(outside, "uid-1"), 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := h.d.NodePublishVolume(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "resolves outside") {
		t.Fatalf("err = %v, want InvalidArgument about resolving outside", err)
	}
}

func TestPublish(t *testing.T) {
	class := spcObject("team-a", "db", "test", map[string]string{"objects": "x"})
	h := newHarness(t, nil, class)
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	pv := web
	pv.tokens = `{"vault":{"token":"jwt-vault","expirationTimestamp":"2030-01-01T00:00:00Z"}}`
	ctx := context.Background()

	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
		t.Fatal(err)
	}
	if got, want := readVolume(t, target), map[string]string{"db-password": "s3cr3t", "api-key": "k1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("volume = %v, want %v", got, want)
	}
	if ok, _ := h.mnt.IsMountPoint(target); !ok {
		t.Error("target is not mounted")
	}
	req := h.prov.lastRequest()
	if req.Class.Key() != "team-a/db" || req.Permission != 0o644 {
		t.Errorf("provider got class %s permission %o", req.Class.Key(), req.Permission)
	}
	if want := (identity.Pod{Namespace: "team-a", Name: "web-0", UID: "uid-1", ServiceAccount: "web", NodeName: "node-1"}); req.Identity.Pod != want {
		t.Errorf("pod identity = %+v", req.Identity.Pod)
	}
	tok, err := req.Identity.Tokens.Token(ctx, "vault")
	if err != nil || tok != "jwt-vault" {
		t.Errorf("token for vault = %q, %v", tok, err)
	}
	sts := h.status.all()
	if len(sts) != 1 {
		t.Fatalf("status records = %d", len(sts))
	}
	st := sts[0]
	if st.Name != "web-0-team-a-db" || st.Namespace != "team-a" || st.Labels[NodeLabel] != "node-1" {
		t.Errorf("status meta = %s/%s %v", st.Namespace, st.Name, st.Labels)
	}
	if len(st.OwnerReferences) != 1 || st.OwnerReferences[0].Kind != "Pod" || st.OwnerReferences[0].Name != "web-0" || st.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("owner = %+v", st.OwnerReferences)
	}
	if st.Status.PodName != "web-0" || st.Status.SecretProviderClassName != "db" || !st.Status.Mounted || st.Status.TargetPath != target {
		t.Errorf("status = %+v", st.Status)
	}
	if len(st.Status.Objects) != 2 || st.Status.Objects[0].ID != "api-key" || st.Status.Objects[1].ID != "db-password" {
		t.Errorf("objects not sorted by id: %+v", st.Status.Objects)
	}

	// Idempotent: a second publish of the same target mounts nothing more.
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
		t.Fatal(err)
	}
	if h.mnt.mounts != 1 || h.prov.count() != 1 {
		t.Errorf("second publish: %d mounts, %d fetches; want 1 and 1", h.mnt.mounts, h.prov.count())
	}
	if e := h.event(); e != "" {
		t.Errorf("unexpected event %q", e)
	}
}

func TestPublishTokensFromSecrets(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	pv := web
	pv.tokens = `{"vault":{"token":"from-context"}}`
	req := publishReq(target, pv)
	req.Secrets = map[string]string{AttrTokens: `{"vault":{"token":"from-secrets"}}`}
	if _, err := h.d.NodePublishVolume(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if tok, _ := h.prov.lastRequest().Identity.Tokens.Token(context.Background(), "vault"); tok != "from-secrets" {
		t.Errorf("token = %q, want the one kubelet put in the secrets", tok)
	}
}

func TestPublishFailures(t *testing.T) {
	tests := map[string]struct {
		objs      []client.Object
		provErr   error
		mountErr  error
		code      codes.Code
		reason    string
		msg       string
		wantMount bool
	}{
		// The upstream driver's words (pkg/secrets-store/utils.go
		// getSecretProviderItem; its bats tests grep FailedMount for
		// "failed to get secretproviderclass NS/NAME.*not found").
		"class missing": {
			code: codes.FailedPrecondition, reason: ReasonClassNotFound, msg: `failed to get secretproviderclass team-a/db, error: secretproviderclasses.secrets-store.csi.x-k8s.io "db" not found; classes are read from the pod's namespace only`,
		},
		"class only in another namespace": {
			objs: []client.Object{spcObject("team-b", "db", "test", nil)},
			code: codes.FailedPrecondition, reason: ReasonClassNotFound, msg: `failed to get secretproviderclass team-a/db, error: secretproviderclasses.secrets-store.csi.x-k8s.io "db" not found`,
		},
		"class invalid": {
			objs: []client.Object{spcObject("team-a", "db", "vault", map[string]string{"objects": "- objectName: a"})},
			code: codes.FailedPrecondition, reason: ReasonClassInvalid, msg: "roleName",
		},
		"provider access denied": {
			objs:    []client.Object{spcObject("team-a", "db", "test", nil)},
			provErr: &provider.Error{Class: "team-a/db", Provider: "test", Object: "db-password", Reason: provider.ReasonAccessDenied, Err: errors.New("role web may not read db-password")},
			code:    codes.PermissionDenied, reason: ReasonMountFailed, msg: `object "db-password": AccessDenied: role web may not read db-password`,
		},
		"provider unavailable": {
			objs:    []client.Object{spcObject("team-a", "db", "test", nil)},
			provErr: &provider.Error{Class: "team-a/db", Provider: "test", Reason: provider.ReasonUnavailable, Err: errors.New("connection refused")},
			code:    codes.Unavailable, reason: ReasonMountFailed, msg: "connection refused",
		},
		"plugin missing": {
			objs: []client.Object{spcObject("team-a", "db", "akeyless", nil)},
			code: codes.Unavailable, reason: ReasonMountFailed, msg: "akeyless.sock",
		},
		"mount fails": {
			objs:     []client.Object{spcObject("team-a", "db", "test", nil)},
			mountErr: errors.New("mount tmpfs: operation not permitted"),
			code:     codes.Internal, msg: "operation not permitted",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.ProviderDirs = []string{t.TempDir()} }, tc.objs...)
			h.prov.set(h.prov.files, tc.provErr)
			h.mnt.failNext = tc.mountErr
			target := kubeletTarget(t, h.root, "uid-1", "secrets")
			_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %s containing %q", err, tc.code, tc.msg)
			}
			if ok, _ := h.mnt.IsMountPoint(target); ok {
				t.Error("a failed first publish left the target mounted")
			}
			if tc.reason == ReasonClassNotFound {
				// Kubelet's FailedMount shows the gRPC message: it must
				// start with upstream's phrase.
				if m := status.Convert(err).Message(); !strings.HasPrefix(m, "failed to get secretproviderclass team-a/db, error: ") {
					t.Errorf("message %q does not start with upstream's phrase", m)
				}
				if e := h.event(); !strings.HasPrefix(e, "Warning "+tc.reason+" failed to get secretproviderclass team-a/db, error: ") {
					t.Errorf("event %q does not start with upstream's phrase", e)
				}
			} else if tc.reason != "" {
				e := h.event()
				if !strings.HasPrefix(e, "Warning "+tc.reason+" ") || !strings.Contains(e, tc.msg) {
					t.Errorf("event = %q, want Warning %s with %q", e, tc.reason, tc.msg)
				}
			}
			if n := len(h.status.all()); n != 0 {
				t.Errorf("%d status records after a failed publish", n)
			}
			// Nothing of the pod's can leak into messages: the provider's
			// content never appears.
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Error("error contains a secret value")
			}
		})
	}
}

func TestRepublish(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	publish := func() {
		t.Helper()
		if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publish()
	if h.prov.count() != 1 {
		t.Fatalf("fetches after first publish = %d", h.prov.count())
	}

	t.Run("inside the interval: no backend call", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			h.clk.Step(20 * time.Second)
			publish()
		}
		if n := h.prov.count(); n != 1 {
			t.Errorf("fetches = %d, want still 1", n)
		}
	})
	t.Run("after the interval, unchanged: version-aware fetch, no write, no status", func(t *testing.T) {
		h.clk.Step(30 * time.Second) // 130s since the first fetch
		publish()
		if n := h.prov.count(); n != 2 {
			t.Fatalf("fetches = %d, want 2", n)
		}
		if cur := h.prov.lastRequest().Current; len(cur) != 2 || cur["db-password"] == "" {
			t.Errorf("refresh passed current versions %v", cur)
		}
		if n := len(h.status.all()); n != 1 {
			t.Errorf("status records = %d, want 1 (versions unchanged)", n)
		}
		if e := h.event(); e != "" {
			t.Errorf("unexpected event %q", e)
		}
	})
	t.Run("after the interval, changed: new content, event, status", func(t *testing.T) {
		h.prov.set(map[string]string{"db-password": "rotated", "api-key": "k1"}, nil)
		h.clk.Step(2 * time.Minute)
		publish()
		if got := readVolume(t, target); got["db-password"] != "rotated" || got["api-key"] != "k1" {
			t.Errorf("volume = %v", got)
		}
		if e := h.event(); e != "Normal SecretRotationComplete SecretProviderClass team-a/db: rotated db-password" {
			t.Errorf("event = %q", e)
		}
		sts := h.status.all()
		if len(sts) != 2 {
			t.Fatalf("status records = %d, want 2", len(sts))
		}
		if sts[1].Status.Objects[1].Version == sts[0].Status.Objects[1].Version {
			t.Error("status did not record the new version of db-password")
		}
	})
	t.Run("backend failure keeps the files and the mount", func(t *testing.T) {
		h.prov.set(nil, &provider.Error{Class: "team-a/db", Provider: "test", Reason: provider.ReasonUnavailable, Err: errors.New("connection refused")})
		h.clk.Step(3 * time.Minute)
		publish() // succeeds: a failing republish never fails the volume
		if got := readVolume(t, target); got["db-password"] != "rotated" || got["api-key"] != "k1" {
			t.Errorf("volume after failed refresh = %v", got)
		}
		if ok, _ := h.mnt.IsMountPoint(target); !ok || h.mnt.unmounts != 0 {
			t.Errorf("mounted=%v unmounts=%d after a failed refresh", ok, h.mnt.unmounts)
		}
		if e := h.event(); !strings.HasPrefix(e, "Warning SecretRotationFailed ") || !strings.Contains(e, "connection refused") || !strings.Contains(e, "stay") {
			t.Errorf("event = %q", e)
		}
	})
	t.Run("class deleted: files stay", func(t *testing.T) {
		h2 := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
		tg := kubeletTarget(t, h2.root, "uid-1", "secrets")
		if _, err := h2.d.NodePublishVolume(ctx, publishReq(tg, web)); err != nil {
			t.Fatal(err)
		}
		if err := h2.d.deps.Classes.(client.Client).Delete(ctx, spcObject("team-a", "db", "test", nil)); err != nil {
			t.Fatal(err)
		}
		h2.clk.Step(5 * time.Minute)
		if _, err := h2.d.NodePublishVolume(ctx, publishReq(tg, web)); err != nil {
			t.Fatalf("republish with the class gone: %v", err)
		}
		if got := readVolume(t, tg); got["db-password"] != "s3cr3t" {
			t.Errorf("volume = %v", got)
		}
		if e := h2.event(); !strings.HasPrefix(e, "Warning SecretRotationFailed ") || !strings.Contains(e, "not found") {
			t.Errorf("event = %q", e)
		}
	})
}

func TestRotationDisabled(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.EnableRotation = false }, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	for i := 0; i < 3; i++ {
		if _, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web)); err != nil {
			t.Fatal(err)
		}
		h.clk.Step(time.Hour)
	}
	if n := h.prov.count(); n != 1 {
		t.Errorf("fetches = %d, want 1 with rotation disabled", n)
	}
}

// TestAdoptAfterRestart: a new driver (the shim restarted) finds the volume
// mounted; it times the next fetch from the last write on disk.
func TestAdoptAfterRestart(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	// Pretend the files were written 30s ago by the old process.
	written := h.clk.Now().Add(-30 * time.Second)
	if err := touchData(target, written); err != nil {
		t.Fatal(err)
	}
	restarted, err := NewDriver(h.d.opts, Deps{Mounter: h.mnt, Classes: h.d.deps.Classes, Status: h.status, Events: h.events, Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if n := h.prov.count(); n != 1 {
		t.Errorf("fetches = %d: a republish 30s after the last write must not fetch", n)
	}
	h.clk.Step(2 * time.Minute)
	h.prov.set(map[string]string{"db-password": "new", "api-key": "k1"}, nil)
	if _, err := restarted.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, target); got["db-password"] != "new" || h.mnt.mounts != 1 {
		t.Errorf("after the interval: volume %v, mounts %d", got, h.mnt.mounts)
	}
}

func touchData(dir string, t time.Time) error {
	return lchtimes(filepath.Join(dir, "..data"), t)
}

func TestUnpublish(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	un := &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: target}
	if _, err := h.d.NodeUnpublishVolume(ctx, un); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there: %v", err)
	}
	if ok, _ := h.mnt.IsMountPoint(target); ok {
		t.Error("still mounted")
	}
	if d := h.status.drops; len(d) != 1 || d[0] != "team-a/web-0-team-a-db" {
		t.Errorf("status drops = %v", d)
	}
	// Again: the path is gone, still success.
	if _, err := h.d.NodeUnpublishVolume(ctx, un); err != nil {
		t.Errorf("second unpublish: %v", err)
	}
	// Publishing again after unpublish mounts and fetches anew.
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if h.mnt.mounts != 2 || h.prov.count() != 2 {
		t.Errorf("mounts %d fetches %d, want 2 and 2", h.mnt.mounts, h.prov.count())
	}

	tests := map[string]struct {
		req *csi.NodeUnpublishVolumeRequest
		msg string
	}{
		"no volume id": {&csi.NodeUnpublishVolumeRequest{TargetPath: target}, "volume_id"},
		"no target":    {&csi.NodeUnpublishVolumeRequest{VolumeId: "v"}, "target_path"},
		"outside root": {&csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: "/etc"}, "not inside"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := h.d.NodeUnpublishVolume(ctx, tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// forgettingProvider is a testProvider that records ForgetPod calls, as
// the Vault provider receives them.
type forgettingProvider struct {
	*testProvider
	forgotten []string
}

func (p *forgettingProvider) ForgetPod(uid string) { p.forgotten = append(p.forgotten, uid) }

// TestUnpublishForgetsPod: per-pod provider state goes when the pod's last
// volume is unpublished, not while another volume of the pod is mounted.
func TestUnpublishForgetsPod(t *testing.T) {
	fp := &forgettingProvider{testProvider: newTestProvider("test", map[string]string{"db-password": "s3cr3t"})}
	h := newHarness(t, func(o *Options) { o.Providers = provider.NewSet(fp) }, spcObject("team-a", "db", "test", nil))
	ctx := context.Background()
	other := podVolume{ns: "team-a", pod: "web-1", uid: "uid-2", sa: "web", class: "db"}
	targets := map[string]string{
		"web-0 a": kubeletTarget(t, h.root, "uid-1", "a"),
		"web-0 b": kubeletTarget(t, h.root, "uid-1", "b"),
		"web-1":   kubeletTarget(t, h.root, "uid-2", "a"),
	}
	for name, target := range targets {
		pv := web
		if name == "web-1" {
			pv = other
		}
		if _, err := h.d.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	steps := []struct {
		unpublish string
		want      []string
	}{
		{"web-0 a", nil},                        // web-0 still has volume b
		{"web-1", []string{"uid-2"}},            // web-1's only volume
		{"web-0 b", []string{"uid-2", "uid-1"}}, // web-0's last volume
		{"web-0 b", []string{"uid-2", "uid-1"}}, // already gone: nothing more
	}
	for _, s := range steps {
		un := &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: targets[s.unpublish]}
		if _, err := h.d.NodeUnpublishVolume(ctx, un); err != nil {
			t.Fatalf("unpublish %s: %v", s.unpublish, err)
		}
		if !reflect.DeepEqual(fp.forgotten, s.want) {
			t.Errorf("after unpublishing %s: forgotten %v, want %v", s.unpublish, fp.forgotten, s.want)
		}
	}
}

func TestRouting(t *testing.T) {
	class := spcObject("team-a", "db", "test", map[string]string{"objects": "x"})
	h := newHarness(t, func(o *Options) {
		o.PluginProviders = []string{"test"}
		o.ProviderDirs = []string{t.TempDir()}
	}, class)
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "test.sock") {
		t.Fatalf("err = %v, want the plugin socket to be looked for", err)
	}
	if h.prov.count() != 0 {
		t.Error("the built-in provider was called although routed to its plugin")
	}
}

func TestIdentityAndCapabilities(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	info, err := h.d.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil || info.GetName() != "secrets-store.csi.k8s.io" || info.GetVendorVersion() == "" {
		t.Errorf("GetPluginInfo = %v, %v", info, err)
	}
	p, _ := h.d.Probe(ctx, &csi.ProbeRequest{})
	if p.GetReady().GetValue() {
		t.Error("ready before the cache synced")
	}
	h.d.SetReady()
	p, _ = h.d.Probe(ctx, &csi.ProbeRequest{})
	if !p.GetReady().GetValue() {
		t.Error("not ready after SetReady")
	}
	ni, _ := h.d.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if ni.GetNodeId() != "node-1" {
		t.Errorf("node id = %q", ni.GetNodeId())
	}
	caps, _ := h.d.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if len(caps.GetCapabilities()) != 0 {
		t.Errorf("capabilities = %v", caps.GetCapabilities())
	}
	pc, _ := h.d.GetPluginCapabilities(ctx, &csi.GetPluginCapabilitiesRequest{})
	if len(pc.GetCapabilities()) != 0 {
		t.Errorf("plugin capabilities = %v", pc.GetCapabilities())
	}
	if _, err := h.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("NodeStageVolume = %v", err)
	}
}

func TestCloudIdentity(t *testing.T) {
	const wip = "projects/1/locations/global/workloadIdentityPools/p/providers/k"
	sa := &corev1ServiceAccount{ns: "team-a", name: "web", ann: map[string]string{
		identity.SAAnnotationAWSRoleARN: "arn:aws:iam::1:role/web", identity.SAAnnotationGCPServiceAcct: "web@p.iam.gserviceaccount.com",
		identity.SAAnnotationAzureClientID: "sa-client", "azure.workload.identity/tenant-id": "sa-tenant"}}
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = "team-a", "web-0", "uid-web-0"
	pod.Annotations = map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: "projects/2/locations/global/workloadIdentityPools/q/providers/j"}
	azObjects := "array:\n  - |\n    objectName: a\n    objectType: secret\n"
	aws := func(extra ...string) *ssiv1.SecretProviderClass {
		p := map[string]string{"objects": "- objectName: a\n  objectType: secretsmanager\n", "region": "eu-west-1"}
		for i := 0; i+1 < len(extra); i += 2 {
			p[extra[i]] = extra[i+1]
		}
		return spcObject("team-a", "db", "aws", p)
	}
	gcp := func(extra ...string) *ssiv1.SecretProviderClass {
		p := map[string]string{"secrets": "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"}
		for i := 0; i+1 < len(extra); i += 2 {
			p[extra[i]] = extra[i+1]
		}
		return spcObject("team-a", "db", "gcp", p)
	}
	tests := map[string]struct {
		class   *ssiv1.SecretProviderClass
		read    bool
		wip     string
		withPod bool
		uid     string // of the request; the pod's when empty
		want    identity.Cloud
	}{
		"aws irsa from the service account": {class: aws(), read: true, want: identity.Cloud{AWSRoleARN: "arn:aws:iam::1:role/web"}},
		"aws pod identity sets no role":     {class: aws("usePodIdentity", "true"), read: true, want: identity.Cloud{}},
		"azure class ids win": {
			class: spcObject("team-a", "db", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "class-tenant", "clientID": "class-client", "objects": azObjects}), read: true,
			want: identity.Cloud{AzureClientID: "class-client", AzureTenantID: "class-tenant"},
		},
		"azure client id from the service account": {
			class: spcObject("team-a", "db", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "class-tenant", "objects": azObjects}), read: true,
			want: identity.Cloud{AzureClientID: "sa-client", AzureTenantID: "class-tenant"},
		},
		"not a built-in provider": {class: spcObject("team-a", "db", "test", nil), read: true, want: identity.Cloud{}},
		"lookup disabled":         {class: aws(), read: false, want: identity.Cloud{}},
		"cluster workload identity provider": {
			class: gcp(), read: false, wip: wip,
			want: identity.Cloud{GCPWorkloadIdentityProvider: wip},
		},
		"provider-adc takes no workload identity provider": {
			class: gcp("auth", "provider-adc"), read: true, wip: wip, withPod: true,
			want: identity.Cloud{GCPServiceAccount: "web@p.iam.gserviceaccount.com"},
		},
		"the pod's workload identity provider wins": {
			class: gcp(), read: true, wip: wip, withPod: true,
			want: identity.Cloud{GCPServiceAccount: "web@p.iam.gserviceaccount.com", GCPWorkloadIdentityProvider: "//iam.googleapis.com/projects/2/locations/global/workloadIdentityPools/q/providers/j"},
		},
		"another pod under the name": {
			class: gcp(), read: true, wip: wip, withPod: true, uid: "uid-earlier",
			want: identity.Cloud{GCPServiceAccount: "web@p.iam.gserviceaccount.com", GCPWorkloadIdentityProvider: wip},
		},
		"pod not readable": {
			class: gcp(), read: true, wip: wip,
			want: identity.Cloud{GCPServiceAccount: "web@p.iam.gserviceaccount.com", GCPWorkloadIdentityProvider: wip},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := []client.Object{sa.object(), tc.class}
			if tc.withPod {
				objs = append(objs, pod)
			}
			h := newHarness(t, func(o *Options) {
				o.ServiceAccountAnnotations = tc.read
				o.GCPWorkloadIdentityProvider = tc.wip
			}, objs...)
			c, err := h.d.parseClass(tc.class)
			if err != nil {
				t.Fatal(err)
			}
			uid := tc.uid
			if uid == "" {
				uid = string(pod.UID)
			}
			got := h.d.identityOf(context.Background(), c, &publishRequest{pod: identity.Pod{Namespace: "team-a", Name: "web-0", UID: uid, ServiceAccount: "web"}}).Cloud
			if got != tc.want {
				t.Errorf("cloud = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	tests := map[string]struct {
		in, want string
		err      bool
	}{
		"unix three slashes": {in: "unix:///var/lib/kubelet/plugins/x/csi.sock", want: "/var/lib/kubelet/plugins/x/csi.sock"},
		"unix one slash":     {in: "unix:/tmp/csi.sock", want: "/tmp/csi.sock"},
		"plain path":         {in: "/tmp/csi.sock", want: "/tmp/csi.sock"},
		"tcp":                {in: "tcp://127.0.0.1:10000", err: true},
		"relative":           {in: "unix://csi.sock", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := socketPath(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("socketPath(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

// TestRemountAfterExternalUnmount: a known volume that is no longer
// mounted when its interval has passed is published from scratch.
func TestRemountAfterExternalUnmount(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if err := h.mnt.Unmount(target); err != nil {
		t.Fatal(err)
	}
	h.clk.Step(3 * time.Minute)
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.mnt.IsMountPoint(target); !ok || h.mnt.mounts != 2 {
		t.Errorf("mounted=%v mounts=%d, want mounted again", ok, h.mnt.mounts)
	}
	if got := readVolume(t, target); got["db-password"] != "s3cr3t" {
		t.Errorf("volume = %v", got)
	}
}

// TestPublishRefusesTargetThatIsNotADirectory plants what a node user
// could at the target path itself: mount(2) follows a symbolic link there,
// so the tmpfs and the tenant's files would land where it points.
func TestPublishRefusesTargetThatIsNotADirectory(t *testing.T) {
	tests := map[string]func(t *testing.T, target, elsewhere string){
		"symbolic link to a directory": func(t *testing.T, target, elsewhere string) {
			if err := os.Symlink(elsewhere, target); err != nil {
				t.Fatal(err)
			}
		},
		"dangling symbolic link": func(t *testing.T, target, elsewhere string) {
			if err := os.Symlink(filepath.Join(elsewhere, "missing"), target); err != nil {
				t.Fatal(err)
			}
		},
		"regular file": func(t *testing.T, target, _ string) {
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, plant := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil, spcObject("team-a", "db", "test", map[string]string{"objects": "x"}))
			target := kubeletTarget(t, h.root, "uid-1", "secrets")
			elsewhere := t.TempDir()
			plant(t, target, elsewhere)
			_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "plain directory") {
				t.Fatalf("err = %v, want FailedPrecondition saying the target must be a plain directory", err)
			}
			if h.mnt.mounts != 0 || h.prov.count() != 0 {
				t.Errorf("mounted %d times, fetched %d times over a planted target", h.mnt.mounts, h.prov.count())
			}
			if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
				t.Errorf("files written through the planted target: %v", entries)
			}
		})
	}
}
