package security

// Issue 14, findings 1 and 11, as a tenant with rights in one namespace
// would try them: classes whose parameters name /dev/zero, a FIFO or
// another file of the shared process, and a Vault server (the tenant's
// own) that answers 100 MB. The node shim is the shipped binary
// (`ssi-agent csi`) run as a child against a real kube-apiserver, so its
// memory is measured alone; the sync controller's providers (the set
// ssi-webhook builds for it) are attacked in a child process of this test
// binary for the same reason.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	yaml "sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// capsMarker is planted in files and responses; no error or event may
// quote it (finding 11). It starts with 'h' as the example did.
const capsMarker = "hMARKER-caps-6b1d"

// capsHugeBytes is the attacker's Vault value: 100 MB.
const capsHugeBytes = 100 << 20

// capsFakeVault is the attacker's (and the victim's) Vault: Kubernetes
// login always succeeds; secret/data/huge streams a 100 MB value,
// secret/data/marker answers a non-JSON body with the marker, and
// secret/data/small a small value that changes on every read (rotation).
type capsFakeVault struct {
	srv   *httptest.Server
	reads atomic.Int64
	huge  atomic.Int64 // bytes of the huge answer actually sent
}

func capsStartVault(t *testing.T) *capsFakeVault {
	fv := &capsFakeVault{}
	fv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/login"):
			_, _ = io.WriteString(w, `{"auth":{"client_token":"hvs.caps","lease_duration":3600,"renewable":false}}`)
		case r.URL.Path == "/v1/secret/data/huge":
			// Chunked, no Content-Length: the reader must stop on its own.
			_, _ = io.WriteString(w, `{"data":{"data":{"v":"`)
			chunk := []byte(strings.Repeat("Z", 64<<10))
			for sent := 0; sent < capsHugeBytes; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				fv.huge.Add(int64(len(chunk)))
			}
			_, _ = io.WriteString(w, `"}}}`)
		case r.URL.Path == "/v1/secret/data/marker":
			_, _ = io.WriteString(w, capsMarker+" this is not JSON")
		case r.URL.Path == "/v1/secret/data/small":
			n := fv.reads.Add(1)
			_, _ = fmt.Fprintf(w, `{"data":{"data":{"v":"value-%d"},"metadata":{"version":%d}}}`, n, n)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fv.srv.Close)
	return fv
}

// capsAttackClasses are the attacker's classes, by name: each names a file
// the shared process must not read, or asks for a response it must not
// hold. plantedFile holds the marker and is readable by the process.
func capsAttackClasses(vaultURL, plantedFile, fifo string) map[string]ssiv1.SecretProviderClassSpec {
	vaultObj := func(path string) string {
		return "- objectName: out\n  secretPath: " + path + "\n  secretKey: v\n"
	}
	vault := func(extra map[string]string, path string) ssiv1.SecretProviderClassSpec {
		p := map[string]string{"vaultAddress": vaultURL, "roleName": "r", "objects": vaultObj(path)}
		for k, v := range extra {
			p[k] = v
		}
		return ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: p}
	}
	azure := func(file string) ssiv1.SecretProviderClassSpec {
		return ssiv1.SecretProviderClassSpec{Provider: "azure", Parameters: map[string]string{
			"keyvaultName": "kvcaps", "tenantId": "t", "clientID": "c", "cloudName": "AzureStackCloud", "cloudEnvFileName": file,
			"objects": "array:\n  - |\n    objectName: db\n    objectType: secret\n"}}
	}
	return map[string]ssiv1.SecretProviderClassSpec{
		"azure-dev-zero":     azure("/dev/zero"),
		"azure-planted-file": azure(plantedFile),
		"azure-fifo":         azure(fifo),
		"vault-ca-dev-zero":  vault(map[string]string{"vaultCACertPath": "/dev/zero"}, "secret/data/small"),
		"vault-ca-dir-dev":   vault(map[string]string{"vaultCADirectory": "/dev"}, "secret/data/small"),
		"vault-client-key":   vault(map[string]string{"vaultTLSClientCertPath": plantedFile, "vaultTLSClientKeyPath": "/dev/zero"}, "secret/data/small"),
		"vault-huge-value":   vault(nil, "secret/data/huge"),
		"vault-marker-body":  vault(nil, "secret/data/marker"),
	}
}

// capsPlant writes the marker file and a FIFO into a fresh directory.
func capsPlant(t *testing.T) (file, fifo string) {
	dir := t.TempDir()
	file = filepath.Join(dir, "node-file.json")
	if err := os.WriteFile(file, []byte(capsMarker+`{"activeDirectoryEndpoint":"https://x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo = filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, fifo
}

// capsChartMemoryLimit reads resources.limits.memory of a component from
// the chart's values.yaml.
func capsChartMemoryLimit(t *testing.T, component string) int64 {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "secrets-store-injector", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	c, _ := values[component].(map[string]any)
	res, _ := c["resources"].(map[string]any)
	lim, _ := res["limits"].(map[string]any)
	s, _ := lim["memory"].(string)
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatalf("values.yaml %s.resources.limits.memory %q: %v", component, s, err)
	}
	return q.Value()
}

// capsMemWatch polls a child's VmRSS; above limit it kills the child (so
// that today's code, which reads /dev/zero whole, fails the test instead of
// the machine), and records it.
type capsMemWatch struct {
	pid     int
	limit   int64
	before  int64 // VmRSS when the watch started
	over    atomic.Int64
	stop    chan struct{}
	stopped chan struct{}
}

func capsWatchMemory(pid int, limit int64) *capsMemWatch {
	w := &capsMemWatch{pid: pid, limit: limit, before: capsProcStatus(pid, "VmRSS"), stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			if rss := capsProcStatus(pid, "VmRSS"); rss > limit {
				w.over.Store(rss)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
	}()
	return w
}

// done stops watching and returns the peak resident memory (VmHWM).
func (w *capsMemWatch) done(t *testing.T, what string) int64 {
	close(w.stop)
	<-w.stopped
	hwm := capsProcStatus(w.pid, "VmHWM")
	if over := w.over.Load(); over > 0 {
		t.Fatalf("%s: resident memory reached %d bytes, over the chart limit of %d bytes; killed", what, over, w.limit)
	}
	// Printed for the docs: go test -v ./test/security -run TestCaps.
	t.Logf("%s: peak resident memory (VmHWM) %.1f MiB under attack (%.1f MiB before it); chart limit %.0f MiB", what, float64(hwm)/(1<<20), float64(w.before)/(1<<20), float64(w.limit)/(1<<20))
	fmt.Printf("MEASURED %s VmHWM=%d bytes (%.1f MiB; VmRSS before the attack %.1f MiB), chart limit %d bytes\n", what, hwm, float64(hwm)/(1<<20), float64(w.before)/(1<<20), w.limit)
	return hwm
}

// capsProcStatus returns a "kB" field of /proc/<pid>/status in bytes, 0 when
// the process is gone.
func capsProcStatus(pid int, field string) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return n << 10
	}
	return 0
}

// capsRequireMounts stops the test unless tmpfs can be mounted here
// (root): it fails under CI and skips elsewhere (testenv.RequireCapability).
func capsRequireMounts(t *testing.T, dir string) {
	t.Helper()
	testenv.RequireCapability(t, "tmpfs mounts", testenv.AsRoot())
	probe := filepath.Join(dir, "probe")
	if err := os.Mkdir(probe, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", probe, "tmpfs", 0, "size=1m"); err != nil {
		testenv.RequireCapability(t, "tmpfs mounts", fmt.Errorf("mount tmpfs on %s: %w (run as root with CAP_SYS_ADMIN)", probe, err))
	}
	_ = unix.Unmount(probe, 0)
	_ = os.Remove(probe)
}

// capsShim is the shipped `ssi-agent csi` binary run as a child.
type capsShim struct {
	pid  int
	node csi.NodeClient
	root string
}

func capsStartShim(t *testing.T, env *testenv.Env) *capsShim {
	root, err := os.MkdirTemp("", "caps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	capsRequireMounts(t, root)
	bin := testenv.GoBuild(t, filepath.Join(t.TempDir(), "ssi-agent"), "agent")
	user, err := env.Env.ControlPlane.AddUser(envtest.User{Name: "caps-shim", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(root, "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "csi.sock")
	cmd := exec.Command(bin, "csi", "--endpoint", "unix://"+sock, "--nodeid", "node-1", "--kubelet-root-dir", root,
		"--plugins-registry-dir", "-", "--metrics-addr", "", "--kubeconfig", kcPath, "--service-account-annotations=false",
		"--rotation-poll-interval", "1s")
	logPath := filepath.Join(t.TempDir(), "shim.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &capsShim{pid: cmd.Process.Pid, root: root}
	t.Cleanup(func() {
		_ = syscall.Kill(s.pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(s.pid, syscall.SIGKILL)
			<-done
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 16<<10 {
				b = b[len(b)-16<<10:]
			}
			t.Logf("shim log (tail):\n%s", b)
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ident := csi.NewIdentityClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := ident.Probe(context.Background(), &csi.ProbeRequest{})
		if err == nil && p.GetReady().GetValue() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shim is not ready after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.node = csi.NewNodeClient(conn)
	return s
}

// publish sends NodePublishVolume for pod ns/pod and class as kubelet does,
// with a service-account token for the API server's audience.
func (s *capsShim) publish(ctx context.Context, t *testing.T, ns, pod, class string) (string, error) {
	target := filepath.Join(s.root, "pods", ns+"-"+pod, "volumes", "kubernetes.io~csi", "secrets", "mount")
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		t.Fatal(err)
	}
	tokens, _ := json.Marshal(map[string]any{"": map[string]string{"token": "jwt-" + pod, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	_, err := s.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   "csi-" + ns + "-" + pod,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly: true,
		VolumeContext: map[string]string{
			"secretProviderClass":    class,
			plugin.KeyPodNamespace:   ns,
			plugin.KeyPodName:        pod,
			plugin.KeyPodUID:         "uid-" + pod,
			plugin.KeyServiceAccount: "default",
			plugin.KeyEphemeral:      "true",
			plugin.KeyTokens:         string(tokens),
		},
	})
	t.Cleanup(func() {
		_, _ = s.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "csi-" + ns + "-" + pod, TargetPath: target})
	})
	return target, err
}

func capsMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}

// capsCheckQuiet fails when text quotes the planted content.
func capsCheckQuiet(t *testing.T, what, text string) {
	t.Helper()
	for _, leak := range []string{"MARKER", "invalid character 'h'", "ZZZZ"} {
		if strings.Contains(text, leak) {
			t.Errorf("%s quotes file or response content (%q): %s", what, leak, text)
		}
	}
}

// capsWants is what the refusal of each attack class must say: the rule
// and the parameter, never the content.
var capsWants = map[string]string{
	"azure-dev-zero":     "parameters.cloudEnvFileName",
	"azure-planted-file": "parameters.cloudEnvFileName",
	"azure-fifo":         "parameters.cloudEnvFileName",
	"vault-ca-dev-zero":  "parameters.vaultCACertPath",
	"vault-ca-dir-dev":   "parameters.vaultCADirectory",
	"vault-client-key":   "parameters.vaultTLSClientCertPath",
	"vault-huge-value":   "larger than the limit of",
	"vault-marker-body":  "the answer is not Vault JSON",
}

// TestCapsNodeShimUnderAttack: a tenant's classes naming /dev/zero, a FIFO
// or a node file, and a 100 MB Vault value, each fail with an error that
// names the parameter or the limit and quotes nothing; the shim stays
// under its chart memory limit (measured: VmHWM, printed); and a second
// tenant's pod, published while the attacks run, gets its volume and
// rotates.
func TestCapsNodeShimUnderAttack(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	fv := capsStartVault(t)
	planted, fifo := capsPlant(t)
	attacker := env.Namespace(t, "attacker", nil)
	victim := env.Namespace(t, "tenant-b", nil)
	classes := capsAttackClasses(fv.srv.URL, planted, fifo)
	for name, spec := range classes {
		if err := env.Client.Create(ctx, &ssiv1.SecretProviderClass{ObjectMeta: capsMeta(attacker, name), Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	normal := ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: map[string]string{
		"vaultAddress": fv.srv.URL, "roleName": "r", "objects": "- objectName: out\n  secretPath: secret/data/small\n  secretKey: v\n"}}
	if err := env.Client.Create(ctx, &ssiv1.SecretProviderClass{ObjectMeta: capsMeta(victim, "normal"), Spec: normal}); err != nil {
		t.Fatal(err)
	}
	shim := capsStartShim(t, env)
	// The informer must have seen the classes; the shim reads a class it
	// has not seen from the API server, so this is a formality.
	limit := capsChartMemoryLimit(t, "linux")
	watch := capsWatchMemory(shim.pid, limit)

	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for name := range classes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			_, err := shim.publish(cctx, t, attacker, "pod-"+name, name)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		}()
	}
	// The victim publishes while the attacks are in flight.
	vctx, vcancel := context.WithTimeout(ctx, 60*time.Second)
	target, err := shim.publish(vctx, t, victim, "web", "normal")
	vcancel()
	if err != nil {
		t.Fatalf("the second tenant's pod did not get its volume while the attack ran: %v", err)
	}
	first, err := os.ReadFile(filepath.Join(target, "out"))
	if err != nil || !strings.HasPrefix(string(first), "value-") {
		t.Fatalf("the second tenant's file: %q, %v", first, err)
	}
	wg.Wait()
	for name, want := range capsWants {
		err := errs[name]
		if err == nil {
			t.Errorf("class %s was served", name)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("class %s: %v; want it to say %q", name, err, want)
		}
		capsCheckQuiet(t, "the publish error of "+name, err.Error())
	}
	if sent := fv.huge.Load(); sent >= capsHugeBytes {
		t.Errorf("the shim read the whole %d-byte answer", sent)
	}
	// The victim rotates: a republish after the poll interval fetches the
	// new version and swaps it in.
	time.Sleep(1100 * time.Millisecond)
	if _, err := shim.publish(ctx, t, victim, "web", "normal"); err != nil {
		t.Fatalf("republish: %v", err)
	}
	second, _ := os.ReadFile(filepath.Join(target, "out"))
	if string(second) == string(first) {
		t.Errorf("the second tenant's volume did not rotate: %q", second)
	}
	watch.done(t, "ssi-agent csi (node shim)")

	// No event on the attacker's pods quotes the planted content.
	var events corev1.EventList
	if err := env.Client.List(ctx, &events, client.InNamespace(attacker)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		capsCheckQuiet(t, "event "+e.Reason+" on "+e.InvolvedObject.Name, e.Message)
	}
}

// TestCapsSyncProvidersUnderAttack: the providers of the sync controller
// (builtin.New for a shared process, fetched through provider.FetchMerged
// as the controller's reconcile does) refuse the same classes with the
// same errors, and a child process doing it stays under the webhook's
// chart memory limit. The controller's Kubernetes side (informers, Secret
// writes) is not in the child: what a class can make it read is.
func TestCapsSyncProvidersUnderAttack(t *testing.T) {
	if os.Getenv("CAPS_SYNC_CHILD") != "" {
		capsSyncChild(t)
		return
	}
	fv := capsStartVault(t)
	planted, fifo := capsPlant(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCapsSyncProvidersUnderAttack$", "-test.v")
	cmd.Env = append(os.Environ(), "CAPS_SYNC_CHILD=1", "CAPS_VAULT="+fv.srv.URL, "CAPS_PLANTED="+planted, "CAPS_FIFO="+fifo)
	// The child's output is written by exec's copying goroutine while
	// this one polls it: a Recorder is safe for that.
	var out logcheck.Recorder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watch := capsWatchMemory(cmd.Process.Pid, capsChartMemoryLimit(t, "webhook"))
	// Peak memory is read before the child is reaped: it waits for stdin
	// to close once done.
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(out.Text(), "CAPS-CHILD-DONE") {
		select {
		case err := <-waited:
			watch.done(t, "sync controller providers")
			t.Fatalf("the child ended early: %v\n%s", err, out.Text())
		case <-deadline:
			t.Fatalf("the child did not finish:\n%s", out.Text())
		case <-time.After(20 * time.Millisecond):
		}
	}
	watch.done(t, "sync controller providers (child of the test)")
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	<-waited //nolint:errcheck // the child was just killed; its exit status says nothing
	if !strings.Contains(out.Text(), "CAPS-CHILD-OK") {
		t.Fatalf("the child's checks failed:\n%s", out.Text())
	}
	if sent := fv.huge.Load(); sent >= capsHugeBytes {
		t.Errorf("the providers read the whole %d-byte answer", sent)
	}
}

// capsSyncChild runs in the child: every attack class through the sync
// controller's provider set, concurrently.
func capsSyncChild(t *testing.T) {
	set := builtin.New(slog.New(slog.DiscardHandler), builtin.OutsidePod, time.Minute, limits.Config{}, builtin.Shared{})
	defer func() { _ = set.Close() }()
	classes := capsAttackClasses(os.Getenv("CAPS_VAULT"), os.Getenv("CAPS_PLANTED"), os.Getenv("CAPS_FIFO"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for name, specObj := range classes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj := &ssiv1.SecretProviderClass{ObjectMeta: capsMeta("attacker", name), Spec: specObj}
			class, err := spc.Parse(obj)
			if err != nil {
				mu.Lock()
				failed = true
				mu.Unlock()
				t.Errorf("class %s does not parse: %v", name, err)
				return
			}
			p, _ := set.Get(class.Provider)
			id := identity.Identity{Pod: identity.Pod{Namespace: "attacker", Name: "sync-" + name}, Tokens: identity.StaticTokens{"": "jwt"}}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			_, _, err = provider.FetchMerged(ctx, p, provider.Request{Class: class, Identity: id}, nil)
			mu.Lock()
			defer mu.Unlock()
			if err == nil || !strings.Contains(err.Error(), capsWants[name]) {
				failed = true
				t.Errorf("class %s: %v; want it to say %q", name, err, capsWants[name])
				return
			}
			for _, leak := range []string{"MARKER", "invalid character 'h'", "ZZZZ"} {
				if strings.Contains(err.Error(), leak) {
					failed = true
					t.Errorf("class %s: the error quotes content: %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
	if !failed {
		fmt.Println("CAPS-CHILD-OK")
	}
	fmt.Println("CAPS-CHILD-DONE")
	// Stay alive until the parent has read VmHWM (it sends SIGTERM).
	time.Sleep(time.Minute)
}
