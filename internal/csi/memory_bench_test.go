package csi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// Workload of BenchmarkShimMemory: pods with one secrets volume of
// memObjects Vault KV version 2 secrets of benchSize bytes, each pod with
// its own service account (so its own Vault login and session).
const (
	memObjects  = 10
	memAudience = "vault"
)

// memSample is the shim's memory at one point: VmRSS and VmHWM from
// /proc/PID/status, and from its /metrics the Go heap in use and the
// goroutines (each Vault session the shim keeps runs one).
type memSample struct {
	rssKiB, hwmKiB  float64
	heapMiB         float64
	goroutines      float64
	mounted, phases string
}

// BenchmarkShimMemory measures the resident memory of the node shim as it
// ships: `ssi-agent csi` built from ./agent (or $SSI_AGENT_BIN; `make
// bench-csi` passes bin/ssi-agent), with its built-in providers, run as a
// child process and called over its unix socket as kubelet calls it. Each
// pod's volume is a class of 10 Vault secrets read from a real Vault
// (bin/vault, KV version 2) with Kubernetes auth checked by a real
// kube-apiserver; every pod has its own UID, target path and service
// account, so its own Vault login. It prints the shim's VmRSS and VmHWM,
// Go heap in use and goroutines:
//
//	idle            ready, class cache synced, nothing published
//	100 pods        after publishing 100 pods' volumes
//	300 pods        after publishing 200 more (300 mounted)
//	unpublished     10 s and 150 s after unpublishing all 300 (an idle Go
//	                process collects garbage when the runtime forces it,
//	                every 2 minutes)
//
// Publishing runs one call at a time; the figures are upper bounds on a
// shared machine. Run it with `make bench-csi` (root: real tmpfs mounts).
func BenchmarkShimMemory(b *testing.B) {
	bin := shimBinary(b)
	env := testenv.Start(b, testenv.Options{})
	root := shortDir(b)
	requireMounts(b, root)
	ctx := context.Background()

	v := testenv.StartVault(b, testenv.VaultOptions{})
	v.EnableKubernetesAuth(b, env, "")
	ns := env.Namespace(b, "shim-mem", nil)
	v.Policy(b, "shim", `path "secret/data/shim/*" { capabilities = ["read"] }`)
	v.KubernetesRole(b, "", testenv.KubernetesRole{Name: "shim", ServiceAccounts: []string{"*"}, Namespaces: []string{ns}, Policies: []string{"shim"}, Audience: memAudience})
	var objects strings.Builder
	want := map[string]string{}
	for i := 0; i < memObjects; i++ {
		name := fmt.Sprintf("secret-%d", i)
		want[name] = string(benchContent(i, benchSize))
		v.PutKV2(b, "secret", "shim/"+name, map[string]any{"value": want[name]})
		fmt.Fprintf(&objects, "- objectName: %s\n  secretPath: secret/data/shim/%s\n  secretKey: value\n", name, name)
	}
	params := map[string]string{"vaultAddress": v.Addr, "roleName": "shim", "audience": memAudience, "objects": objects.String()}
	if err := env.Client.Create(ctx, spcObject(ns, "vault-secrets", "vault", params)); err != nil {
		b.Fatal(err)
	}

	const total = 300
	pods := make([]podVolume, total)
	for i := range pods {
		sa := fmt.Sprintf("sa-%d", i)
		env.ServiceAccount(b, ns, sa, nil)
		tok, err := env.Token(ctx, ns, sa, []string{memAudience}, time.Hour, nil)
		if err != nil {
			b.Fatal(err)
		}
		exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		pods[i] = podVolume{ns: ns, pod: fmt.Sprintf("pod-%d", i), uid: fmt.Sprintf("uid-%04d", i), sa: sa, class: "vault-secrets",
			tokens: fmt.Sprintf(`{%q:{"token":%q,"expirationTimestamp":%q}}`, memAudience, tok, exp)}
	}

	metricsAddr := testenv.FreeAddr(b)
	pid, node := startShimBinary(b, env, bin, root, metricsAddr)
	b.Logf("shim: %s csi (built-in providers: %s), pid %d", bin, builtInProviders(b, bin), pid)

	var samples []memSample
	sample := func(phase string, mounted int) {
		time.Sleep(2 * time.Second) // let the last call's garbage settle
		s := memSample{rssKiB: procStatusKiB(pid, "VmRSS"), hwmKiB: procStatusKiB(pid, "VmHWM"), phases: phase, mounted: strconv.Itoa(mounted)}
		m := scrape(b, "http://"+metricsAddr+"/metrics")
		s.heapMiB, s.goroutines = m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_goroutines"]
		samples = append(samples, s)
	}
	targets := make([]string, total)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			targets[i] = kubeletTarget(b, root, pods[i].uid, "secrets")
			if _, err := node.NodePublishVolume(ctx, publishReq(targets[i], pods[i])); err != nil {
				b.Fatalf("publish %s: %v", pods[i].pod, err)
			}
		}
		// What kubelet would mount is what Vault holds.
		for _, i := range []int{from, to - 1} {
			got := map[string]string{}
			files, err := atomicdir.Read(targets[i])
			if err != nil {
				b.Fatalf("read %s: %v", targets[i], err)
			}
			for _, f := range files {
				got[f.Path] = string(f.Data)
			}
			for name, w := range want {
				if got[name] != w {
					b.Fatalf("%s: file %s does not hold the Vault secret", pods[i].pod, name)
				}
			}
		}
	}

	b.ResetTimer()
	sample("idle", 0)
	publish(0, 100)
	sample("after publishing", 100)
	publish(100, total)
	sample("after publishing", total)
	for i := range pods {
		req := publishReq(targets[i], pods[i])
		if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: req.VolumeId, TargetPath: targets[i]}); err != nil {
			b.Fatalf("unpublish %s: %v", pods[i].pod, err)
		}
		if _, err := os.Stat(targets[i]); !os.IsNotExist(err) {
			b.Fatalf("unpublish %s left the target: %v", pods[i].pod, err)
		}
	}
	time.Sleep(8 * time.Second) // sample waits 2 s more: 10 s after the last unpublish
	sample("10 s after unpublishing all", 0)
	// An idle Go process collects only when the runtime forces it (every
	// 2 minutes); the scavenger then returns the freed pages.
	time.Sleep(138 * time.Second)
	sample("150 s after unpublishing all", 0)
	b.StopTimer()

	b.Logf("machine shared with other builds: figures are upper bounds")
	b.Logf("%-30s %7s %10s %10s %10s %10s", "phase", "mounted", "VmRSS MiB", "VmHWM MiB", "heap MiB", "goroutines")
	for _, s := range samples {
		b.Logf("%-30s %7s %10.1f %10.1f %10.1f %10.0f", s.phases, s.mounted, s.rssKiB/1024, s.hwmKiB/1024, s.heapMiB, s.goroutines)
	}
	idle, p100, p300, gone, later := samples[0], samples[1], samples[2], samples[3], samples[4]
	b.ReportMetric(idle.rssKiB/1024, "MiB-rss-idle")
	b.ReportMetric(p100.rssKiB/1024, "MiB-rss-100-pods")
	b.ReportMetric(p300.rssKiB/1024, "MiB-rss-300-pods")
	b.ReportMetric(later.hwmKiB/1024, "MiB-peak")
	b.ReportMetric(gone.rssKiB/1024, "MiB-rss-unpublished-10s")
	b.ReportMetric(later.rssKiB/1024, "MiB-rss-unpublished-150s")
	b.ReportMetric((p300.rssKiB-p100.rssKiB)/200, "KiB-rss/pod")
	b.ReportMetric(gone.goroutines-idle.goroutines, "goroutines-left-unpublished")
}

// shimBinary is $SSI_AGENT_BIN or ssi-agent built from ./agent as `make
// build` builds it.
func shimBinary(b *testing.B) string {
	if p := os.Getenv("SSI_AGENT_BIN"); p != "" {
		return p
	}
	return testenv.GoBuild(b, filepath.Join(b.TempDir(), "ssi-agent"), "agent")
}

// builtInProviders asks the binary which providers it has compiled in
// (`ssi-agent fetch` names them when a class asks for another one).
func builtInProviders(b *testing.B, bin string) string {
	spcFile := filepath.Join(b.TempDir(), "spc.yaml")
	if err := os.WriteFile(spcFile, []byte("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: x}\nspec: {provider: none-such}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	out, _ := exec.Command(bin, "fetch", "--spc", spcFile, "--out", b.TempDir()).CombinedOutput()
	s := string(out)
	if i := strings.Index(s, "built-in providers: "); i >= 0 {
		return strings.TrimRight(s[i+len("built-in providers: "):], ")\n")
	}
	return strings.TrimSpace(s)
}

// startShimBinary runs `bin csi` against env's API server, serving the CSI
// socket under root and /metrics at metricsAddr, and waits until it is
// ready. It is stopped by pid when the benchmark ends.
func startShimBinary(b *testing.B, env *testenv.Env, bin, root, metricsAddr string) (int, csi.NodeClient) {
	b.Helper()
	kcPath := benchKubeconfig(b, env, root)
	sock := filepath.Join(root, "plugins", DriverName, "csi.sock")
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+sock, "--nodeid", "bench-node", "--kubelet-root-dir", root,
		"--plugins-registry-dir", "-", "--kubeconfig", kcPath, "--metrics-addr", metricsAddr,
		"--provider-volume", filepath.Join(root, "providers"), "--additional-provider-volume-paths", "")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	pid := testenv.StartChild(b, "ssi-agent csi", cmd).Pid()
	return pid, waitShim(b, "the shim", sock, 60*time.Second)
}

// scrape returns the unlabelled samples of a Prometheus text exposition.
func scrape(b *testing.B, url string) map[string]float64 {
	b.Helper()
	resp, err := http.Get(url) //nolint:gosec,noctx // the shim's loopback metrics
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		if name, val, ok := strings.Cut(line, " "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				out[name] = f
			}
		}
	}
	return out
}
