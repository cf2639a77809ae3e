package plugin

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/volume"
)

// fuzzServer answers Mount with whatever response the fuzz input decodes
// to.
type fuzzServer struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	resp atomic.Pointer[v1alpha1.MountResponse]
}

func (s *fuzzServer) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "fuzz"}, nil
}

func (s *fuzzServer) Mount(context.Context, *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	return s.resp.Load(), nil
}

// fuzzMaxRecv is the response size limit of the fuzzed client.
const fuzzMaxRecv = 64 << 10

// FuzzPluginResponse decodes random bytes as a plugin's Mount response,
// serves it over a real unix socket to the plugin client, and publishes
// what the client accepts with the volume writer the shim uses. Nothing
// may panic, nothing may appear outside the volume directory (every entry
// of the volume, symbolic links resolved, stays inside it), and the volume
// never holds more bytes than the client's receive limit.
//
//	go test ./internal/provider/plugin -run '^$' -fuzz FuzzPluginResponse -fuzztime 60s
func FuzzPluginResponse(f *testing.F) {
	dir := socketDir(f)
	srv := &fuzzServer{}
	srv.resp.Store(&v1alpha1.MountResponse{})
	l, err := net.Listen("unix", filepath.Join(dir, "fuzz.sock"))
	if err != nil {
		f.Fatal(err)
	}
	g := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(g, srv)
	go func() { _ = g.Serve(l) }()
	f.Cleanup(g.Stop)
	c, err := New("fuzz", Options{Dirs: []string{dir}, Timeout: 5 * time.Second, MaxRecvMsgSize: fuzzMaxRecv})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })

	for _, seed := range []*v1alpha1.MountResponse{
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "a", Mode: 0o644, Contents: []byte("A")}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "../escape", Contents: []byte("x")}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "/etc/passwd", Contents: []byte("x")}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "..data/a", Contents: []byte("x")}, {Path: "d/e", Mode: 0o400}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a"}, {Id: "a"}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "a", Mode: -1}}},
		{ObjectVersion: []*v1alpha1.ObjectVersion{{Id: "a", Version: "1"}}, Files: []*v1alpha1.File{{Path: "big", Contents: make([]byte, fuzzMaxRecv+1)}}},
		{Error: &v1alpha1.Error{Code: "PermissionDenied"}},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := &v1alpha1.MountResponse{}
		if err := proto.Unmarshal(data, resp); err != nil {
			return
		}
		srv.resp.Store(resp)
		parent := t.TempDir()
		dir := filepath.Join(parent, "volume")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		v := &volume.Volume{Class: class("fuzz", nil), Dir: dir}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = v.Refresh(ctx, c.Bind(Mount{TargetPath: dir}), identity.Identity{})

		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "volume" {
			t.Fatalf("entries beside the volume: %v", entries)
		}
		var size int64
		err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.Type()&fs.ModeSymlink != 0 {
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					return err
				}
				if real != dir && !strings.HasPrefix(real, dir+"/") {
					t.Errorf("%s resolves outside the volume, to %s", p, real)
				}
				return nil
			}
			if e.Type().IsRegular() {
				fi, err := e.Info()
				if err != nil {
					return err
				}
				size += fi.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if size > fuzzMaxRecv {
			t.Errorf("the volume holds %d bytes, more than the %d-byte response limit", size, fuzzMaxRecv)
		}
	})
}
