package csi

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// Payload of the benchmark: benchFiles files of benchSize bytes, a typical
// secrets volume.
const (
	benchFiles = 10
	benchSize  = 256
)

// benchContent is the content testdata/benchshim's "bench" provider serves
// for file i (same formula).
func benchContent(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte('a' + (i+j)%26)
	}
	return b
}

// startBenchShim builds testdata/benchshim (csi.Run with an in-memory
// built-in provider) and runs it as its own process, called over its
// socket as kubelet calls it. It is stopped by pid when the benchmark ends.
func startBenchShim(b *testing.B, env *testenv.Env, root, providerDir string) (int, csi.NodeClient) {
	b.Helper()
	bin := testenv.GoBuild(b, filepath.Join(b.TempDir(), "benchshim"), "internal/csi/testdata/benchshim")
	kcPath := benchKubeconfig(b, env, root)
	sock := filepath.Join(root, "plugins", DriverName, "csi.sock")
	cmd := exec.Command(bin, "--endpoint", "unix://"+sock, "--kubelet-root-dir", root, "--kubeconfig", kcPath, "--provider-dir", providerDir)
	pid := testenv.StartChild(b, "benchshim", cmd).Pid()
	return pid, waitShim(b, "benchshim", sock, 30*time.Second)
}

// benchKubeconfig writes a kubeconfig of a system:masters user of env's
// API server under root, for a shim binary the benchmark starts.
func benchKubeconfig(b *testing.B, env *testenv.Env, root string) string {
	b.Helper()
	user, err := env.Env.ControlPlane.AddUser(envtest.User{Name: "bench-shim", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	kcPath := filepath.Join(root, "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		b.Fatal(err)
	}
	return kcPath
}

// waitShim waits until the shim started as name creates sock and answers
// Probe ready, at most timeout, and returns its node client.
func waitShim(b *testing.B, name, sock string, timeout time.Duration) csi.NodeClient {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not create its socket %s", name, sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn := dial(b, sock)
	ident := csi.NewIdentityClient(conn)
	for {
		p, err := ident.Probe(context.Background(), &csi.ProbeRequest{})
		if err == nil && p.GetReady().GetValue() {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s is not ready: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return csi.NewNodeClient(conn)
}

// procStatusKiB reads a "VmRSS"-style field of /proc/<pid>/status.
func procStatusKiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return v
		}
	}
	return 0
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return sum / time.Duration(len(d))
}

// floorPublish is the least any driver must do: create the target, mount a
// tmpfs and write the same files directly.
func floorPublish(b *testing.B, target string, files map[string][]byte) time.Duration {
	start := time.Now()
	if err := os.Mkdir(target, 0o750); err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", TmpfsFlags, TmpfsData); err != nil {
		b.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(target, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(start)
	if err := unix.Unmount(target, 0); err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(target); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkNodePublishVolume measures a first NodePublishVolume through the
// shim's unix socket, as kubelet calls it, for a built-in provider and for
// a provider plugin (the upstream fake provider), against the floor: a bare
// tmpfs mount plus writing the same files directly, measured in the same
// loop. It reports latencies (p50, mean, p99), the ratio to the floor, the
// and the round trip of an empty call on the same socket (the transport's
// share). The shim runs against a real kube-apiserver (class cache, status
// writes). It runs testdata/benchshim, a test build with an in-memory
// provider, so it reports no memory: BenchmarkShimMemory measures that on
// the shipped ssi-agent.
func BenchmarkNodePublishVolume(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	root := shortDir(b)
	requireMounts(b, root)
	ctx := context.Background()
	ns := env.Namespace(b, "bench", nil)
	params := map[string]string{"files": strconv.Itoa(benchFiles), "size": strconv.Itoa(benchSize)}
	for _, c := range []struct{ name, provider string }{{"builtin", "bench"}, {"plugin", "fake"}} {
		if err := env.Client.Create(ctx, spcObject(ns, c.name, c.provider, params)); err != nil {
			b.Fatal(err)
		}
	}
	files := map[string][]byte{}
	var pfiles []*v1alpha1.File
	objects := map[string]string{}
	for i := 0; i < benchFiles; i++ {
		name := fmt.Sprintf("secret-%d", i)
		files[name] = benchContent(i, benchSize)
		pfiles = append(pfiles, &v1alpha1.File{Path: name, Mode: 0o644, Contents: files[name]})
		objects[name] = "1"
	}
	providerDir := shortDir(b)
	srv := startFakePlugin(b, providerDir, "fake")
	srv.SetObjects(objects)
	srv.SetFiles(pfiles)

	_, node := startBenchShim(b, env, root, providerDir)
	tokens := `{"sts.amazonaws.com":{"token":"` + strings.Repeat("t", 900) + `","expirationTimestamp":"2030-01-01T00:00:00Z"}}`

	b.Run("republish-inside-interval", func(b *testing.B) {
		podDir := filepath.Join(root, "pods", "uid-republish", "volumes", "kubernetes.io~csi")
		if err := os.MkdirAll(podDir, 0o750); err != nil {
			b.Fatal(err)
		}
		target := filepath.Join(podDir, "secrets")
		req := publishReq(target, podVolume{ns: ns, pod: "republish", uid: "uid-republish", sa: "default", class: "builtin", tokens: tokens})
		if _, err := node.NodePublishVolume(ctx, req); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_, _ = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: target})
		})
		lat := make([]time.Duration, 0, b.N)
		rpc := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil {
				b.Fatal(err)
			}
			rpc = append(rpc, time.Since(start))
			start = time.Now()
			if _, err := node.NodePublishVolume(ctx, req); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		b.ReportMetric(float64(percentile(lat, .5).Microseconds()), "republish-p50-µs")
		b.ReportMetric(float64(percentile(rpc, .5).Microseconds()), "rpc-p50-µs")
	})

	for _, class := range []string{"builtin", "plugin"} {
		b.Run(class, func(b *testing.B) {
			podDir := filepath.Join(root, "pods", "bench-uid", "volumes", "kubernetes.io~csi")
			floorDir := filepath.Join(root, "pods", "floor-uid", "volumes", "kubernetes.io~csi")
			for _, d := range []string{podDir, floorDir} {
				if err := os.MkdirAll(d, 0o750); err != nil {
					b.Fatal(err)
				}
			}
			pub := make([]time.Duration, 0, b.N)
			floor := make([]time.Duration, 0, b.N)
			rpc := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				floor = append(floor, floorPublish(b, filepath.Join(floorDir, fmt.Sprintf("f-%d", i)), files))

				// The transport alone: an empty call on the same connection.
				start := time.Now()
				if _, err := node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil {
					b.Fatal(err)
				}
				rpc = append(rpc, time.Since(start))

				// Each publish is a new pod's volume, as on a node.
				pod := fmt.Sprintf("bench-%s-%d", class, i)
				target := filepath.Join(podDir, pod)
				req := publishReq(target, podVolume{ns: ns, pod: pod, uid: "uid-" + pod, sa: "default", class: class, tokens: tokens})
				start = time.Now()
				if _, err := node.NodePublishVolume(ctx, req); err != nil {
					b.Fatalf("publish %s: %v", target, err)
				}
				pub = append(pub, time.Since(start))
				if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: target}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if b.N == 1 {
				return // the calibration round; figures come from the real run
			}
			p50, f50 := percentile(pub, .5), percentile(floor, .5)
			b.ReportMetric(float64(p50.Microseconds()), "publish-p50-µs")
			b.ReportMetric(float64(mean(pub).Microseconds()), "publish-mean-µs")
			b.ReportMetric(float64(percentile(pub, .99).Microseconds()), "publish-p99-µs")
			b.ReportMetric(float64(percentile(rpc, .5).Microseconds()), "rpc-p50-µs")
			b.ReportMetric(float64(f50.Microseconds()), "floor-p50-µs")
			b.ReportMetric(float64(mean(floor).Microseconds()), "floor-mean-µs")
			b.ReportMetric(float64(p50)/float64(f50), "x-floor-p50")
			b.ReportMetric(float64(mean(pub))/float64(mean(floor)), "x-floor-mean")
			// Without the transport, which the floor does not pay and any
			// CSI driver does: the shim's own work against the floor.
			b.ReportMetric(float64(p50-percentile(rpc, .5))/float64(f50), "x-floor-p50-net")
		})
	}
}
