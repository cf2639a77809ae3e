package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
)

// fakeMounter keeps a mount table in memory; an unmount empties the
// directory, as unmounting a tmpfs makes its files disappear.
type fakeMounter struct {
	mu       sync.Mutex
	mounted  map[string]int
	mounts   int
	unmounts int
	failNext error
}

func newFakeMounter() *fakeMounter { return &fakeMounter{mounted: map[string]int{}} }

func (f *fakeMounter) IsMountPoint(p string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mounted[p] > 0, nil
}

func (f *fakeMounter) MountTmpfs(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return errors.New("mount point is not a directory")
	}
	f.mounted[p]++
	f.mounts++
	return nil
}

func (f *fakeMounter) Unmount(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unmounts++
	if f.mounted[p] == 0 {
		return nil
	}
	f.mounted[p]--
	if f.mounted[p] == 0 {
		delete(f.mounted, p)
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(p, e.Name()))
		}
	}
	return nil
}

// testProvider serves files from memory: one object per file, version =
// hash of the content, Unchanged when the caller has that version. It
// counts calls and remembers the last request.
type testProvider struct {
	name string

	mu    sync.Mutex
	files map[string]string
	err   error
	calls int
	last  provider.Request
}

func newTestProvider(name string, files map[string]string) *testProvider {
	return &testProvider{name: name, files: files}
}

func (p *testProvider) Name() string { return p.name }

func (p *testProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.last = req
	if p.err != nil {
		return nil, p.err
	}
	var out []provider.Object
	for path, content := range p.files {
		sum := sha256.Sum256([]byte(content))
		v := hex.EncodeToString(sum[:8])
		if req.Current[path] == v {
			out = append(out, provider.Object{ID: path, Version: v, Unchanged: true})
			continue
		}
		out = append(out, provider.Object{ID: path, Version: v, Files: []atomicdir.File{{Path: path, Data: []byte(content)}}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (p *testProvider) set(files map[string]string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files, p.err = files, err
}

func (p *testProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *testProvider) lastRequest() provider.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// newClock is the fake clock the driver tests step.
func newClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// statusLog records what the driver hands to the status recorder.
type statusLog struct {
	mu      sync.Mutex
	records []*ssiv1.SecretProviderClassPodStatus
	drops   []string
}

func (s *statusLog) Record(st *ssiv1.SecretProviderClassPodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, st)
}

func (s *statusLog) Drop(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = append(s.drops, ns+"/"+name)
}

func (s *statusLog) all() []*ssiv1.SecretProviderClassPodStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ssiv1.SecretProviderClassPodStatus(nil), s.records...)
}

// spcObject is a SecretProviderClass.
func spcObject(ns, name, prov string, params map[string]string) *ssiv1.SecretProviderClass {
	o := &ssiv1.SecretProviderClass{}
	o.Namespace, o.Name = ns, name
	o.Spec.Provider = ssiv1.Provider(prov)
	o.Spec.Parameters = params
	return o
}

// podVolume describes the pod and volume of a publish request.
type podVolume struct {
	ns, pod, uid, sa, class string
	tokens                  string
}

// publishReq builds a NodePublishVolumeRequest as kubelet sends it for an
// inline secrets-store volume.
func publishReq(target string, pv podVolume) *csi.NodePublishVolumeRequest {
	vc := map[string]string{
		inject.ClassAttribute:    "" + pv.class,
		plugin.KeyPodNamespace:   pv.ns,
		plugin.KeyPodName:        pv.pod,
		plugin.KeyPodUID:         pv.uid,
		plugin.KeyServiceAccount: pv.sa,
		plugin.KeyEphemeral:      "true",
	}
	if pv.tokens != "" {
		vc[AttrTokens] = pv.tokens
	}
	return &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + strings.ReplaceAll(target, "/", "-"),
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: vc,
	}
}

// kubeletTarget returns a target path laid out as kubelet does, with its
// parent created.
func kubeletTarget(t testing.TB, root, podUID, vol string) string {
	t.Helper()
	dir := filepath.Join(root, "pods", podUID, "volumes", "kubernetes.io~csi", vol)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "mount")
}

// readVolume returns the user-visible files of a published volume.
func readVolume(t testing.TB, dir string) map[string]string {
	t.Helper()
	files, err := atomicdir.Read(dir)
	if err != nil {
		t.Fatalf("read volume %s: %v", dir, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatalf("read %s through its user-visible name: %v", f.Path, err)
		}
		out[f.Path] = string(b)
	}
	return out
}

// corev1ServiceAccount builds a service account object.
type corev1ServiceAccount struct {
	ns, name string
	ann      map[string]string
}

func (s *corev1ServiceAccount) object() *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{}
	sa.Namespace, sa.Name, sa.Annotations = s.ns, s.name, s.ann
	return sa
}

// lchtimes sets the times of a symlink itself.
func lchtimes(p string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// versionOf is the version testProvider reports for content.
func versionOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:8])
}
