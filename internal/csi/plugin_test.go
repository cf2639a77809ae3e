package csi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/fake"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

// startFakePlugin serves the upstream fake provider on <dir>/<name>.sock.
func startFakePlugin(t testing.TB, dir, name string) *fake.MockCSIProviderServer {
	t.Helper()
	srv, err := fake.NewMocKCSIProviderServer(filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// TestPluginForwarding publishes classes whose provider is not built in (or
// is routed to its plugin) through the upstream fake provider on a real
// unix socket.
func TestPluginForwarding(t *testing.T) {
	dir := shortDir(t)
	other := shortDir(t)
	tests := map[string]struct {
		class  *ssiv1.SecretProviderClass
		plugin string
		routes []string
	}{
		"provider that is not built in": {class: spcObject("team-a", "db", "akeyless", map[string]string{"objects": "x"}), plugin: "akeyless"},
		"built-in name routed to its plugin": {
			class: spcObject("team-a", "db", "vault", map[string]string{"roleName": "plugin-params-not-parsed-here"}), plugin: "vault", routes: []string{"vault"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startFakePlugin(t, dir, tc.plugin)
			srv.SetObjects(map[string]string{"secret/db-password": "v1"})
			srv.SetFiles([]*v1alpha1.File{{Path: "db-password", Mode: 0o600, Contents: []byte("from-plugin")}, {Path: "ca/ca.crt", Contents: []byte("CA")}})
			h := newHarness(t, func(o *Options) {
				o.ProviderDirs = []string{other, dir}
				o.PluginProviders = tc.routes
				o.PluginTimeout = 10 * time.Second
			}, tc.class)
			t.Cleanup(func() { _ = h.d.Close() })
			target := kubeletTarget(t, h.root, "uid-1", "secrets")
			ctx := context.Background()
			if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
				t.Fatal(err)
			}
			if got := readVolume(t, target); !reflect.DeepEqual(got, map[string]string{"db-password": "from-plugin", "ca/ca.crt": "CA"}) {
				t.Errorf("volume = %v", got)
			}
			st := h.status.all()
			if len(st) != 1 || len(st[0].Status.Objects) != 1 || st[0].Status.Objects[0] != (ssiv1.SecretProviderClassObject{ID: "secret/db-password", Version: "v1"}) {
				t.Errorf("status = %+v", st)
			}
			if h.prov.count() != 0 {
				t.Error("the built-in test provider was called")
			}

			// Rotation through the plugin: new content after the interval;
			// a plugin failure keeps the files.
			srv.SetObjects(map[string]string{"secret/db-password": "v2"})
			srv.SetFiles([]*v1alpha1.File{{Path: "db-password", Mode: 0o600, Contents: []byte("rotated")}})
			h.clk.Step(3 * time.Minute)
			if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
				t.Fatal(err)
			}
			if got := readVolume(t, target); !reflect.DeepEqual(got, map[string]string{"db-password": "rotated"}) {
				t.Errorf("volume after rotation = %v", got)
			}
			if e := h.event(); e != "Normal SecretRotationComplete SecretProviderClass team-a/db: rotated ca, db-password" {
				t.Errorf("event = %q", e)
			}
			// Internal, not Unavailable: the plugin client's gRPC retry
			// policy would retry that twice, a second or more apart, to the
			// same answer; what is tested here is the kept files.
			srv.SetReturnError(status.Error(codes.Internal, "vault sealed"))
			h.clk.Step(3 * time.Minute)
			if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
				t.Fatalf("a failing republish failed the volume: %v", err)
			}
			if got := readVolume(t, target); got["db-password"] != "rotated" {
				t.Errorf("volume after a failed refresh = %v", got)
			}
			if e := h.event(); !strings.HasPrefix(e, "Warning SecretRotationFailed ") || !strings.Contains(e, "vault sealed") {
				t.Errorf("event = %q", e)
			}
		})
	}
}

// TestPluginFirstPublishFailure: the plugin's error fails the first publish
// with its reason, and nothing stays mounted.
func TestPluginFirstPublishFailure(t *testing.T) {
	dir := shortDir(t)
	srv := startFakePlugin(t, dir, "akeyless")
	srv.SetReturnError(errors.New("permission denied for path /db"))
	h := newHarness(t, func(o *Options) { o.ProviderDirs = []string{dir}; o.PluginTimeout = 10 * time.Second },
		spcObject("team-a", "db", "akeyless", map[string]string{"objects": "x"}))
	t.Cleanup(func() { _ = h.d.Close() })
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
	if err == nil || !strings.Contains(err.Error(), "permission denied for path /db") {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := h.mnt.IsMountPoint(target); ok {
		t.Error("still mounted after a failed first publish")
	}
	if e := h.event(); !strings.HasPrefix(e, "Warning FailedToMountSecrets ") {
		t.Errorf("event = %q", e)
	}
}

// TestPluginModeZero: a file a plugin returns with mode 0 is written 0000,
// as the upstream driver writes it (the others keep their mode), and the
// shim warns once per volume, naming the file, not on every rotation.
func TestPluginModeZero(t *testing.T) {
	dir := shortDir(t)
	srv := startFakePlugin(t, dir, "akeyless")
	srv.SetObjects(map[string]string{"secret/db-password": "v1"})
	srv.SetFiles([]*v1alpha1.File{{Path: "db-password", Mode: 0o600, Contents: []byte("p")}, {Path: "ca.crt", Contents: []byte("CA")}})
	var logs bytes.Buffer
	h := newHarness(t, func(o *Options) {
		o.ProviderDirs = []string{dir}
		o.PluginTimeout = 10 * time.Second
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, spcObject("team-a", "db", "akeyless", map[string]string{"objects": "x"}))
	t.Cleanup(func() { _ = h.d.Close() })
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if i > 0 {
			srv.SetObjects(map[string]string{"secret/db-password": "v2"})
			h.clk.Step(3 * time.Minute)
		}
		if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]os.FileMode{"db-password": 0o600, "ca.crt": 0} {
			fi, err := os.Stat(filepath.Join(target, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("publish %d: %s has mode %o, want %o", i, name, fi.Mode().Perm(), want)
			}
		}
	}
	if n := strings.Count(logs.String(), "returned files with mode 0"); n != 1 {
		t.Errorf("%d mode-0 warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "ca.crt") || strings.Contains(logs.String(), "db-password]") {
		t.Errorf("the warning should name ca.crt only:\n%s", logs.String())
	}
}
