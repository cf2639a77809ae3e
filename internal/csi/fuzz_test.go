package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/scheme"
)

// FuzzNodePublishVolume sends NodePublishVolume requests with random
// volume context, attributes, tokens and target paths (under the kubelet
// root of a temporary directory) to a driver with a fake mounter and an
// in-memory provider. No request may panic, every failure must be a gRPC
// status with a code other than Unknown, and a success must have published
// inside the kubelet root, which NodeUnpublishVolume then cleans up.
//
//	go test ./internal/csi -run '^$' -fuzz FuzzNodePublishVolume -fuzztime 60s
func FuzzNodePublishVolume(f *testing.F) {
	root := f.TempDir()
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		spcObject("team-a", "db", "test", map[string]string{"objects": "x"}),
		spcObject("team-a", "bad", "aws", map[string]string{"objects": "{"}),
		spcObject("team-a", "plug", "no-such-plugin", map[string]string{}),
	).Build()
	mnt := newFakeMounter()
	d, err := NewDriver(Options{
		NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix:///unused.sock",
		EnableRotation: true, RotationPollInterval: time.Nanosecond,
		ProviderDirs: []string{f.TempDir()}, PluginTimeout: time.Second,
		Providers: provider.NewSet(newTestProvider("test", map[string]string{"db-password": "s3cr3t", "nested/api-key": "k1"})),
	}, Deps{Mounter: mnt, Classes: c, APIReader: c})
	if err != nil {
		f.Fatal(err)
	}
	podDir := "pods/uid-1/volumes/kubernetes.io~csi/secrets"
	if err := os.MkdirAll(filepath.Join(root, podDir), 0o750); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(f.TempDir(), filepath.Join(root, podDir, "planted")); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		target, class, ns, name, uid, sa, tokens, attrKey, attrVal string
		readonly                                                   bool
	}{
		{podDir + "/mount", "db", "team-a", "web-0", "uid-1", "web", `{"vault":{"token":"jwt","expirationTimestamp":"2026-01-01T00:00:00Z"}}`, "", "", true},
		{podDir + "/mount", "db", "team-a", "web-0", "uid-1", "web", "", "objects", "override", false},
		{podDir + "/planted", "db", "team-a", "web-0", "uid-1", "web", "", "", "", true},
		{podDir + "/../../../../../etc/mount", "db", "team-a", "web-0", "uid-1", "web", "", "", "", true},
		{"pods/uid-2/volumes/kubernetes.io~csi/v/mount", "bad", "team-a", "p", "uid-2", "", "{", "", "", true},
		{"pods/uid-3/mount", "plug", "team-a", "p", "uid-3", "", `{"a":{"token":1}}`, "csi.storage.k8s.io/ephemeral", "false", true},
		{"pods/uid-4/mount", "db", "other", "p", "uid-4", "", "[]", inject.ClassAttribute, "", true},
		{"", "", "", "", "", "", "", "", "", true},
	} {
		f.Add(seed.target, seed.class, seed.ns, seed.name, seed.uid, seed.sa, seed.tokens, seed.attrKey, seed.attrVal, seed.readonly)
	}
	f.Fuzz(func(t *testing.T, target, class, ns, name, uid, sa, tokens, attrKey, attrVal string, readonly bool) {
		vc := map[string]string{
			inject.ClassAttribute:    class,
			plugin.KeyPodNamespace:   ns,
			plugin.KeyPodName:        name,
			plugin.KeyPodUID:         uid,
			plugin.KeyServiceAccount: sa,
		}
		if tokens != "" {
			vc[AttrTokens] = tokens
		}
		if attrKey != "" {
			vc[attrKey] = attrVal
		}
		// String concatenation, not Join: "../" must reach the driver.
		path := root + "/" + target
		req := &csi.NodePublishVolumeRequest{
			VolumeId:   "v",
			TargetPath: path,
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
			},
			Readonly:      readonly,
			VolumeContext: vc,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := d.NodePublishVolume(ctx, req)
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || st.Code() == codes.Unknown || st.Code() == codes.OK {
				t.Fatalf("NodePublishVolume returned %v, not a gRPC status with a code", err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error quotes a secret value: %v", err)
			}
			return
		}
		clean := filepath.Clean(path)
		if !within(root, clean) {
			t.Fatalf("published outside the kubelet root: %s", clean)
		}
		if fi, err := os.Lstat(clean); err != nil || !fi.IsDir() {
			t.Fatalf("published target %s is not a directory: %v", clean, err)
		}
		if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: path}); err != nil {
			t.Fatalf("unpublish of a published target: %v", err)
		}
		if _, err := os.Lstat(clean); !os.IsNotExist(err) {
			t.Fatalf("target %s left after unpublish: %v", clean, err)
		}
	})
}
