package plugin

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/fake"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

func TestAttributes(t *testing.T) {
	tests := map[string]struct {
		params, vc, secrets map[string]string
		want                string
	}{
		"volume context wins over parameters": {
			params: map[string]string{"objects": "- a", "roleName": "app", "secretProviderClass": "from-params"},
			vc:     map[string]string{"secretProviderClass": "web", KeyPodName: "web-0"},
			want:   `{"csi.storage.k8s.io/pod.name":"web-0","objects":"- a","roleName":"app","secretProviderClass":"web"}`,
		},
		"tokens from the volume context": {
			params: map[string]string{"roleName": "app"},
			vc:     map[string]string{KeyTokens: `{"vault":{"token":"t1"}}`},
			want:   `{"csi.storage.k8s.io/serviceAccount.tokens":"{\"vault\":{\"token\":\"t1\"}}","roleName":"app"}`,
		},
		"tokens from the secrets win": {
			vc:      map[string]string{KeyTokens: `{"a":{"token":"old"}}`},
			secrets: map[string]string{KeyTokens: `{"a":{"token":"new"}}`},
			want:    `{"csi.storage.k8s.io/serviceAccount.tokens":"{\"a\":{\"token\":\"new\"}}"}`,
		},
		"other secrets are not attributes": {
			secrets: map[string]string{"clientid": "x"},
			want:    `{}`,
		},
		"html characters escaped as encoding/json does": {
			params: map[string]string{"q": "a<b&c>"},
			want:   `{"q":"a\u003cb\u0026c\u003e"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Attributes(tc.params, tc.vc, tc.secrets)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Attributes = %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestPermission(t *testing.T) {
	tests := map[string]struct {
		mode fs.FileMode
		want string
	}{
		"default 0644": {0o644, "420"},
		"0600":         {0o600, "384"},
		"0440":         {0o440, "288"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Permission(tc.mode); got != tc.want {
				t.Errorf("Permission(%o) = %s, want %s", tc.mode, got, tc.want)
			}
		})
	}
}

func TestAssociate(t *testing.T) {
	objs := func(ids ...string) []provider.Object {
		var out []provider.Object
		for _, id := range ids {
			out = append(out, provider.Object{ID: id})
		}
		return out
	}
	files := func(paths ...string) []atomicdir.File {
		var out []atomicdir.File
		for _, p := range paths {
			out = append(out, atomicdir.File{Path: p})
		}
		return out
	}
	tests := map[string]struct {
		objs  []provider.Object
		files []atomicdir.File
		want  []int
	}{
		"aws and vault: id is the file name": {objs("db", "api"), files("api", "db"), []int{1, 0}},
		"version history directory":          {objs("cert", "key"), files("key/0", "key/1", "cert"), []int{1, 1, 0}},
		"longest directory id wins":          {objs("a", "a/b"), files("a/b/c"), []int{1}},
		"azure id type/name, file name":      {objs("secret/db", "key/signing"), files("signing", "db"), []int{1, 0}},
		"unmatched files go to the first":    {objs("projects/p/secrets/s/versions/1", "projects/p/secrets/t/versions/1"), files("s.txt", "t.txt"), []int{0, 0}},
		"exact beats base name":              {objs("x/name", "name"), files("name"), []int{1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Associate(tc.objs, tc.files); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Associate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestObjects(t *testing.T) {
	ov := func(kv ...string) []*v1alpha1.ObjectVersion {
		var out []*v1alpha1.ObjectVersion
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &v1alpha1.ObjectVersion{Id: kv[i], Version: kv[i+1]})
		}
		return out
	}
	tests := map[string]struct {
		resp    *v1alpha1.MountResponse
		want    []provider.Object
		wantErr string
		reason  provider.Reason
	}{
		"files attached to objects": {
			resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1", "b", "2"), Files: []*v1alpha1.File{
				{Path: "b", Mode: 0o600, Contents: []byte("B")}, {Path: "a", Contents: []byte("A")}}},
			want: []provider.Object{
				{ID: "a", Version: "1", Files: []atomicdir.File{{Path: "a", ExactMode: true, Data: []byte("A")}}},
				{ID: "b", Version: "2", Files: []atomicdir.File{{Path: "b", ExactMode: true, Mode: 0o600, Data: []byte("B")}}},
			},
		},
		// The upstream driver writes what the plugin returns: mode 0
		// stays 0000 (pkg/util/fileutil writes files with the mode as
		// given), unlike a built-in provider's zero.
		"mode 0 is kept": {
			resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "a", Mode: 0, Contents: []byte("A")}}},
			want: []provider.Object{{ID: "a", Version: "1", Files: []atomicdir.File{{Path: "a", ExactMode: true, Data: []byte("A")}}}},
		},
		"objects without files (plugin wrote them itself)": {
			resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1")},
			want: []provider.Object{{ID: "a", Version: "1"}},
		},
		"a repeated path: last wins": {
			resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{
				{Path: "a", Contents: []byte("first")}, {Path: "a", Contents: []byte("second")}}},
			want: []provider.Object{{ID: "a", Version: "1", Files: []atomicdir.File{{Path: "a", ExactMode: true, Data: []byte("second")}}}},
		},
		"no object versions": {resp: &v1alpha1.MountResponse{}, wantErr: "no object versions", reason: provider.ReasonInvalidContent},
		"escaping path":      {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "../etc/passwd"}}}, wantErr: "cannot hold", reason: provider.ReasonInvalidContent},
		"absolute path":      {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "/etc/passwd"}}}, wantErr: "absolute", reason: provider.ReasonInvalidContent},
		"reserved prefix":    {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "..data"}}}, wantErr: "reserved", reason: provider.ReasonInvalidContent},
		"mode out of range":  {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "a", Mode: 0o4755}}}, wantErr: "mode 2541", reason: provider.ReasonInvalidContent},
		"negative mode":      {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1"), Files: []*v1alpha1.File{{Path: "a", Mode: -1}}}, wantErr: "mode -1", reason: provider.ReasonInvalidContent},
		"empty id":           {resp: &v1alpha1.MountResponse{ObjectVersion: ov("", "1")}, wantErr: "without an id", reason: provider.ReasonInvalidContent},
		"duplicate id":       {resp: &v1alpha1.MountResponse{ObjectVersion: ov("a", "1", "a", "2")}, wantErr: "twice", reason: provider.ReasonInvalidContent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Objects(tc.resp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if r := provider.ReasonOf(err); r != tc.reason {
					t.Errorf("reason = %s, want %s", r, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Objects =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	tests := map[string]struct {
		err  error
		code string
		want provider.Reason
	}{
		"grpc not found":           {err: status.Error(codes.NotFound, "x"), want: provider.ReasonNotFound},
		"grpc permission denied":   {err: status.Error(codes.PermissionDenied, "x"), want: provider.ReasonAccessDenied},
		"grpc unauthenticated":     {err: status.Error(codes.Unauthenticated, "x"), want: provider.ReasonUnauthenticated},
		"grpc resource exhausted":  {err: status.Error(codes.ResourceExhausted, "x"), want: provider.ReasonThrottled},
		"grpc invalid argument":    {err: status.Error(codes.InvalidArgument, "x"), want: provider.ReasonInvalidConfig},
		"grpc unavailable":         {err: status.Error(codes.Unavailable, "x"), want: provider.ReasonUnavailable},
		"grpc deadline":            {err: status.Error(codes.DeadlineExceeded, "x"), want: provider.ReasonUnavailable},
		"grpc internal":            {err: status.Error(codes.Internal, "x"), want: provider.ReasonUnknown},
		"grpc canceled":            {err: status.Error(codes.Canceled, "x"), want: provider.ReasonUnavailable},
		"grpc unknown":             {err: status.Error(codes.Unknown, "x"), want: provider.ReasonUnknown},
		"grpc already exists":      {err: status.Error(codes.AlreadyExists, "x"), want: provider.ReasonUnknown},
		"grpc failed precondition": {err: status.Error(codes.FailedPrecondition, "x"), want: provider.ReasonInvalidConfig},
		"grpc aborted":             {err: status.Error(codes.Aborted, "x"), want: provider.ReasonUnavailable},
		"grpc out of range":        {err: status.Error(codes.OutOfRange, "x"), want: provider.ReasonInvalidConfig},
		"grpc unimplemented":       {err: status.Error(codes.Unimplemented, "x"), want: provider.ReasonUnknown},
		"grpc data loss":           {err: status.Error(codes.DataLoss, "x"), want: provider.ReasonInvalidContent},
		"grpc code 99":             {err: status.Error(codes.Code(99), "x"), want: provider.ReasonUnknown},
		"grpc response too large":  {err: status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4096)"), want: provider.ReasonInvalidContent},
		"plain error":              {err: errors.New("no socket"), want: provider.ReasonUnavailable},
		"code not found":           {code: "SecretNotFound", want: provider.ReasonNotFound},
		"code access denied":       {code: "AccessDenied", want: provider.ReasonAccessDenied},
		"code throttled":           {code: "Throttling", want: provider.ReasonThrottled},
		"code invalid":             {code: "InvalidParameters", want: provider.ReasonInvalidConfig},
		"code other":               {code: "E42", want: provider.ReasonUnknown},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got provider.Reason
			if tc.err != nil {
				got = reasonOf(tc.err)
			} else {
				got = reasonOfCode(tc.code)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// socketDir returns a short directory for unix sockets (their paths are
// limited to 107 bytes), removed when the test ends.
func socketDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "plg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func class(provider string, params map[string]string) *spc.Class {
	return &spc.Class{Namespace: "team-a", Name: "db", Provider: provider, Parameters: params}
}

// TestUpstreamFakeProvider runs the upstream fake provider on a real unix
// socket and fetches through it.
func TestUpstreamFakeProvider(t *testing.T) {
	dir := socketDir(t)
	srv, err := fake.NewMocKCSIProviderServer(filepath.Join(dir, "fake.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	c, err := New("fake", Options{Dirs: []string{filepath.Join(dir, "missing"), dir}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	m := Mount{
		VolumeContext: map[string]string{"secretProviderClass": "db", KeyPodNamespace: "team-a", KeyPodName: "web-0"},
		TargetPath:    "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount",
	}
	req := provider.Request{Class: class("fake", map[string]string{"objects": "x"}), Permission: 0o640}

	t.Run("version", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != (VersionInfo{Version: "v1alpha1", RuntimeName: "fakeprovider", RuntimeVersion: "0.0.10"}) {
			t.Errorf("Version = %+v", v)
		}
	})
	t.Run("files and versions", func(t *testing.T) {
		srv.SetObjects(map[string]string{"secret/db-password": "v7"})
		srv.SetFiles([]*v1alpha1.File{{Path: "db-password", Mode: 0o600, Contents: []byte("hunter2")}, {Path: "extra", Contents: []byte("e")}})
		got, err := c.Bind(m).Fetch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []provider.Object{{ID: "secret/db-password", Version: "v7", Files: []atomicdir.File{
			{Path: "db-password", Mode: 0o600, ExactMode: true, Data: []byte("hunter2")}, {Path: "extra", ExactMode: true, Data: []byte("e")}}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Fetch =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("unbound fetch", func(t *testing.T) {
		srv.SetObjects(map[string]string{"a": "1"})
		srv.SetFiles([]*v1alpha1.File{{Path: "a", Contents: []byte("A")}})
		got, err := c.Fetch(ctx, provider.Request{Class: req.Class, Identity: identity.Identity{Pod: identity.Pod{Namespace: "team-a", Name: "web-0"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != "a" || string(got[0].Files[0].Data) != "A" {
			t.Errorf("Fetch = %+v", got)
		}
	})
	t.Run("provider error code", func(t *testing.T) {
		srv.SetObjects(map[string]string{"a": "1"})
		srv.SetProviderErrorCode("AccessDenied")
		t.Cleanup(func() { srv.SetProviderErrorCode("") })
		_, err := c.Bind(m).Fetch(ctx, req)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Reason != provider.ReasonAccessDenied || pe.Class != "team-a/db" || pe.Provider != "fake" {
			t.Fatalf("err = %#v", err)
		}
		if !strings.Contains(err.Error(), `error code "AccessDenied"`) {
			t.Errorf("message %q does not name the code", err)
		}
	})
	t.Run("grpc error", func(t *testing.T) {
		srv.SetReturnError(status.Error(codes.PermissionDenied, "role app may not read db"))
		t.Cleanup(func() { srv.SetReturnError(nil) })
		_, err := c.Bind(m).Fetch(ctx, req)
		if provider.ReasonOf(err) != provider.ReasonAccessDenied || !strings.Contains(err.Error(), "role app may not read db") {
			t.Fatalf("err = %v (reason %s)", err, provider.ReasonOf(err))
		}
	})
	t.Run("no object versions", func(t *testing.T) {
		srv.SetObjects(nil)
		_, err := c.Bind(m).Fetch(ctx, req)
		if provider.ReasonOf(err) != provider.ReasonInvalidContent || !strings.Contains(err.Error(), "no object versions") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPluginMissing(t *testing.T) {
	dir := socketDir(t)
	c, err := New("absent", Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Bind(Mount{}).Fetch(context.Background(), provider.Request{Class: class("absent", nil)})
	if provider.ReasonOf(err) != provider.ReasonUnavailable || !strings.Contains(err.Error(), "absent.sock") {
		t.Fatalf("err = %v", err)
	}
}

// recorder is a v1alpha1 server that keeps the requests it got.
type recorder struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	mu       sync.Mutex
	versions []*v1alpha1.VersionRequest
	mounts   []*v1alpha1.MountRequest
}

func (r *recorder) Version(_ context.Context, req *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions = append(r.versions, req)
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "recorder"}, nil
}

func (r *recorder) Mount(_ context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mounts = append(r.mounts, req)
	return &v1alpha1.MountResponse{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "2"}},
		Files: []*v1alpha1.File{{Path: "a", Contents: []byte("A")}}}, nil
}

func serve(t *testing.T, sock string, srv v1alpha1.CSIDriverProviderServer) func() {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(g, srv)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return g.Stop
}

// TestMountRequest checks every field of the request the plugin receives,
// and that Version is called once per connection.
func TestMountRequest(t *testing.T) {
	dir := socketDir(t)
	rec := &recorder{}
	serve(t, filepath.Join(dir, "rec.sock"), rec)
	c, err := New("rec", Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	m := Mount{
		VolumeContext: map[string]string{"secretProviderClass": "db", KeyPodNamespace: "team-a", KeyTokens: `{"vault":{"token":"jwt"}}`},
		Secrets:       map[string]string{"clientid": "c"},
		TargetPath:    "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount",
	}
	req := provider.Request{
		Class:      class("rec", map[string]string{"roleName": "app", "secretProviderClass": "ignored"}),
		Current:    map[string]string{"b": "9", "a": "1"},
		Permission: 0o644,
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Bind(m).Fetch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.versions) != 1 || rec.versions[0].GetVersion() != "v1alpha1" {
		t.Errorf("Version calls = %v, want one asking v1alpha1", rec.versions)
	}
	if len(rec.mounts) != 2 {
		t.Fatalf("Mount calls = %d", len(rec.mounts))
	}
	got := rec.mounts[0]
	wantAttrs := `{"csi.storage.k8s.io/pod.namespace":"team-a","csi.storage.k8s.io/serviceAccount.tokens":"{\"vault\":{\"token\":\"jwt\"}}","roleName":"app","secretProviderClass":"db"}`
	if got.GetAttributes() != wantAttrs {
		t.Errorf("attributes = %s\nwant %s", got.GetAttributes(), wantAttrs)
	}
	if got.GetSecrets() != `{"clientid":"c"}` {
		t.Errorf("secrets = %s", got.GetSecrets())
	}
	if got.GetTargetPath() != m.TargetPath {
		t.Errorf("target = %s", got.GetTargetPath())
	}
	if got.GetPermission() != "420" {
		t.Errorf("permission = %s", got.GetPermission())
	}
	var cur []string
	for _, o := range got.GetCurrentObjectVersion() {
		cur = append(cur, o.GetId()+"="+o.GetVersion())
	}
	if !reflect.DeepEqual(cur, []string{"a=1", "b=9"}) {
		t.Errorf("current versions = %v", cur)
	}
}

// TestNilSecrets: without nodePublishSecretRef the secrets field is the
// JSON of a nil map, "null", as upstream sends it.
func TestNilSecrets(t *testing.T) {
	dir := socketDir(t)
	rec := &recorder{}
	serve(t, filepath.Join(dir, "rec.sock"), rec)
	c, _ := New("rec", Options{Dirs: []string{dir}})
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Bind(Mount{}).Fetch(context.Background(), provider.Request{Class: class("rec", nil)}); err != nil {
		t.Fatal(err)
	}
	if s := rec.mounts[0].GetSecrets(); s != "null" {
		t.Errorf("secrets = %q, want null", s)
	}
	if p := rec.mounts[0].GetPermission(); p != "420" {
		t.Errorf("permission = %q, want the default 420", p)
	}
}

// TestPluginRestart: a plugin that restarts on the same socket path is
// reached again without restarting the client.
func TestPluginRestart(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "rec.sock")
	stop := serve(t, sock, &recorder{})
	c, _ := New("rec", Options{Dirs: []string{dir}, Timeout: 20 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	req := provider.Request{Class: class("rec", nil)}
	if _, err := c.Bind(Mount{}).Fetch(ctx, req); err != nil {
		t.Fatal(err)
	}
	stop()
	_ = os.Remove(sock)
	if _, err := c.Bind(Mount{}).Fetch(ctx, req); provider.ReasonOf(err) != provider.ReasonUnavailable {
		t.Fatalf("with the plugin gone: err = %v, want Unavailable", err)
	}
	rec2 := &recorder{}
	serve(t, sock, rec2)
	if _, err := c.Bind(Mount{}).Fetch(ctx, req); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if len(rec2.versions) != 1 || len(rec2.mounts) != 1 {
		t.Errorf("restarted plugin saw %d Version and %d Mount calls", len(rec2.versions), len(rec2.mounts))
	}
}

// TestResponseOverMaxRecvMsgSize: a plugin answer larger than
// MaxRecvMsgSize is refused by the client without being held, as
// InvalidContent (not Throttled: the plugin did not ask to back off), and
// the error quotes no content.
func TestResponseOverMaxRecvMsgSize(t *testing.T) {
	dir := socketDir(t)
	srv, err := fake.NewMocKCSIProviderServer(filepath.Join(dir, "big.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := New("big", Options{Dirs: []string{dir}, Timeout: 10 * time.Second, MaxRecvMsgSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	srv.SetObjects(map[string]string{"a": "1"})
	srv.SetFiles([]*v1alpha1.File{{Path: "a", Contents: []byte(strings.Repeat("P", 100<<10))}})
	req := provider.Request{Class: class("big", map[string]string{"objects": "x"})}
	_, err = c.Bind(Mount{VolumeContext: map[string]string{"secretProviderClass": "db", KeyPodNamespace: "team-a", KeyPodName: "web-0"}, TargetPath: "/t"}).Fetch(context.Background(), req)
	if provider.ReasonOf(err) != provider.ReasonInvalidContent || !strings.Contains(err.Error(), "larger than max") || strings.Contains(err.Error(), "PPPP") {
		t.Fatalf("err %v, want InvalidContent over the 64 KiB limit", err)
	}
}

func TestZeroModeFiles(t *testing.T) {
	objs := []provider.Object{
		{ID: "a", Files: []atomicdir.File{{Path: "b", ExactMode: true}, {Path: "a", ExactMode: true}, {Path: "c", Mode: 0o600, ExactMode: true}}},
		// A built-in provider's zero means the volume's default.
		{ID: "d", Files: []atomicdir.File{{Path: "d"}}},
	}
	if got := ZeroModeFiles(objs); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("ZeroModeFiles = %q, want [a b]", got)
	}
}
