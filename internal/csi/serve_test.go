package csi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	storagev1 "k8s.io/api/storage/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// shortDir is a temporary directory with a path short enough for sockets.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func dial(t testing.TB, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestServeAndRegister plays kubelet: it finds the registration socket in
// plugins_registry, asks GetInfo, connects to the announced CSI endpoint
// and reports the registration result.
func TestServeAndRegister(t *testing.T) {
	root := shortDir(t)
	sock := filepath.Join(root, "plugins", DriverName, "csi.sock")
	reg := prometheus.NewRegistry()
	c := fake.NewClientBuilder().WithScheme(scheme.New()).Build()
	d, err := NewDriver(Options{NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix://" + sock, Version: "1.2.3"},
		Deps{Mounter: newFakeMounter(), Classes: c, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := testenv.Background(t, "Serve", 15*time.Second, cancel, func() error { return d.Serve(ctx) })

	regSock := filepath.Join(root, "plugins_registry", "secrets-store.csi.k8s.io-reg.sock")
	waitFor(t, "the registration socket", func() bool { _, err := os.Stat(regSock); return err == nil })
	rc := registerapi.NewRegistrationClient(dial(t, regSock))
	info, err := rc.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetType() != "CSIPlugin" || info.GetName() != DriverName || info.GetEndpoint() != sock ||
		!reflect.DeepEqual(info.GetSupportedVersions(), []string{"1.0.0"}) {
		t.Errorf("GetInfo = %+v", info)
	}

	ic := csi.NewIdentityClient(dial(t, info.GetEndpoint()))
	pi, err := ic.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil || pi.GetName() != DriverName || pi.GetVendorVersion() != "1.2.3" {
		t.Errorf("GetPluginInfo over the socket = %v, %v", pi, err)
	}
	ni, err := csi.NewNodeClient(dial(t, info.GetEndpoint())).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || ni.GetNodeId() != "node-1" {
		t.Errorf("NodeGetInfo = %v, %v", ni, err)
	}

	h := d.httpHandler(reg)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before sync = %d", code)
	}
	d.SetReady()
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after sync = %d", code)
	}
	if _, err := rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after registration = %d", code)
	}
	if _, err := rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: false, Error: "version 0.3 unsupported"}); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "version 0.3 unsupported") {
		t.Errorf("/healthz after rejection = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "ssi_csi_published_volumes 0") {
		t.Errorf("/metrics = %d %q", code, body)
	}

	stop()
	for _, p := range []string{sock, regSock} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind after stop: %v", p, err)
		}
	}
}

func TestListenUnixRefusesOtherFiles(t *testing.T) {
	dir := shortDir(t)
	p := filepath.Join(dir, "csi.sock")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(p); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("err = %v", err)
	}
}

func TestDriverObject(t *testing.T) {
	t.Parallel()
	tr, fa := true, false
	tests := map[string]struct {
		opts DriverObjectOptions
		want storagev1.CSIDriverSpec
	}{
		"defaults": {
			want: storagev1.CSIDriverSpec{
				AttachRequired: &fa, PodInfoOnMount: &tr, RequiresRepublish: &tr,
				VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{"Ephemeral"},
				TokenRequests: []storagev1.TokenRequest{{Audience: "sts.amazonaws.com"}, {Audience: "pods.eks.amazonaws.com"},
					{Audience: "api://AzureADTokenExchange"}, {Audience: ""}},
			},
		},
		"gcp pool and tokens in secrets": {
			opts: DriverObjectOptions{Audiences: []string{"vault", "my-project.svc.id.goog"}, TokenInSecrets: true},
			want: storagev1.CSIDriverSpec{
				AttachRequired: &fa, PodInfoOnMount: &tr, RequiresRepublish: &tr,
				VolumeLifecycleModes:         []storagev1.VolumeLifecycleMode{"Ephemeral"},
				TokenRequests:                []storagev1.TokenRequest{{Audience: "vault"}, {Audience: "my-project.svc.id.goog"}},
				ServiceAccountTokenInSecrets: &tr,
			},
		},
		"no tokens": {
			opts: DriverObjectOptions{Audiences: []string{}},
			want: storagev1.CSIDriverSpec{
				AttachRequired: &fa, PodInfoOnMount: &tr, RequiresRepublish: &tr,
				VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{"Ephemeral"},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := DriverObject(tc.opts)
			if got.Name != DriverName || got.Kind != "CSIDriver" || got.APIVersion != "storage.k8s.io/v1" {
				t.Errorf("meta = %v %v", got.TypeMeta, got.Name)
			}
			if !reflect.DeepEqual(got.Spec, tc.want) {
				t.Errorf("spec = %+v\nwant %+v", got.Spec, tc.want)
			}
		})
	}
}
