package providertest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/scheme"
)

// The pod InjectWithSecretRef rewrites: web-0 of service account app.
const (
	PodName        = "web-0"
	ServiceAccount = "app"
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

// Shim is the node shim's path: a CSI driver reading classes from a fake
// API server, publishing into kubelet-style target directories, with a
// plain directory standing for the tmpfs.
type Shim struct {
	Driver *ssicsi.Driver
	root   string
}

// NewShim starts a node shim with opts (NodeID, KubeletRootDir and
// Endpoint filled in when empty; Providers is the caller's) that knows
// classes; nothing is published yet.
func NewShim(t *testing.T, opts ssicsi.Options, classes ...*ssiv1.SecretProviderClass) *Shim {
	t.Helper()
	objs := make([]client.Object, len(classes))
	for i, c := range classes {
		objs[i] = c
	}
	api := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	if opts.NodeID == "" {
		opts.NodeID = "node-1"
	}
	if opts.KubeletRootDir == "" {
		opts.KubeletRootDir = t.TempDir()
	}
	if opts.Endpoint == "" {
		opts.Endpoint = "unix:///unused.sock"
	}
	d, err := ssicsi.NewDriver(opts, ssicsi.Deps{Mounter: &dirMounter{m: map[string]bool{}}, Classes: api, APIReader: api})
	if err != nil {
		t.Fatal(err)
	}
	return &Shim{Driver: d, root: opts.KubeletRootDir}
}

// Publish sends NodePublishVolume as kubelet does for the volume "secrets"
// of the pod with uid (named web-<uid>, service account app) in class's
// namespace, with secrets as the keys of its nodePublishSecretRef Secret
// (nil: none), and returns the target path. Kubelet repeats it for a
// republish.
func (s *Shim) Publish(class *ssiv1.SecretProviderClass, uid string, secrets map[string]string) (string, error) {
	target := filepath.Join(s.root, "pods", uid, "volumes", "kubernetes.io~csi", "secrets", "mount")
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return "", err
	}
	_, err := s.Driver.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: "v-" + uid, TargetPath: target, Readonly: true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		VolumeContext: map[string]string{inject.ClassAttribute: class.Name, plugin.KeyPodNamespace: class.Namespace, plugin.KeyPodName: "web-" + uid,
			plugin.KeyPodUID: uid, plugin.KeyServiceAccount: ServiceAccount, plugin.KeyEphemeral: "true"},
		Secrets: secrets,
	})
	return target, err
}

// InjectWithSecretRef rewrites pod web-0, whose CSI volume "secrets" names
// class and the nodePublishSecretRef Secret secretName, as the webhook
// does, checks that only the agent mounts that Secret, and returns the
// agent's configuration (one volume, its SecretsDir set).
func InjectWithSecretRef(t *testing.T, class *ssiv1.SecretProviderClass, secretName string) *agentconfig.Config {
	t.Helper()
	ns := class.Namespace
	yes := true
	pod := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: PodName}, Spec: corev1.PodSpec{
		ServiceAccountName: ServiceAccount,
		Containers:         []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: "secrets", MountPath: "/mnt/secrets", ReadOnly: true}}}},
		Volumes: []corev1.Volume{{Name: "secrets", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: class.Name},
			NodePublishSecretRef: &corev1.LocalObjectReference{Name: secretName}}}}},
	}}
	cfg := inject.DefaultConfig()
	res, err := inject.Rewrite(&cfg, inject.Input{Namespace: ns, NamespaceLabels: map[string]string{inject.LabelInjection: inject.LabelValueEnabled},
		Pod: pod, Classes: map[string]*ssiv1.SecretProviderClass{class.Name: class}, ServiceAccount: &metav1.ObjectMeta{Name: ServiceAccount, Namespace: ns}})
	if err != nil || res.Pod == nil {
		t.Fatalf("Rewrite: %v (skipped %q)", err, res.Skipped)
	}
	var env string
	for _, c := range append(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == inject.SecretsDir+"/secrets" && c.Name != inject.AgentContainerName {
				t.Errorf("container %s mounts the nodePublishSecretRef Secret", c.Name)
			}
		}
		for _, e := range c.Env {
			if c.Name == inject.AgentContainerName && e.Name == agentconfig.EnvConfig {
				env = e.Value
			}
		}
	}
	ac, err := agentconfig.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Volumes) != 1 || ac.Volumes[0].SecretsDir != inject.SecretsDir+"/secrets" {
		t.Fatalf("agent configuration volumes %+v, want one with the Secret's directory", ac.Volumes)
	}
	return ac
}

// WriteSecretDir lays keys out in dir as kubelet's Secret volume does
// (a timestamped directory, ..data linking to it, each key linking into
// ..data); called again, it swaps ..data, as kubelet does when the Secret
// changes. It uses the agent's own writer, which follows kubelet's layout.
func WriteSecretDir(t *testing.T, dir string, keys map[string]string) {
	t.Helper()
	files := make([]atomicdir.File, 0, len(keys))
	for k, v := range keys {
		files = append(files, atomicdir.File{Path: k, Mode: 0o600, Data: []byte(v)})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	if _, err := atomicdir.Write(dir, files); err != nil {
		t.Fatal(err)
	}
}

// WantFiles checks a volume's user-visible files: each of want with its
// content (an empty want matches any non-empty content), and none of
// absent.
func WantFiles(t *testing.T, dir string, want map[string]string, absent ...string) {
	t.Helper()
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			t.Errorf("read %s: %v", name, err)
		case content == "" && len(b) == 0:
			t.Errorf("%s is empty, want content", name)
		case content != "" && string(b) != content:
			t.Errorf("%s = %q, want %q", name, b, content)
		}
	}
	for _, name := range absent {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v), want it absent", name, err)
		}
	}
}

// ReadFile returns the content of a volume's file, failing the test (not
// stopping it) when it cannot be read.
func ReadFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("read %s: %v", name, err)
	}
	return string(b)
}
