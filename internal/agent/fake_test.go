package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// suiteLogs captures every log line, error and termination message the
// agents started by this package's tests produce; TestMain fails the suite
// if any value a fake backend served shows up in it.
var suiteLogs = logcheck.New()

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "run":
		os.Exit(helperRun())
	case "list":
		os.Exit(helperList())
	}
	os.Exit(suiteLogs.Main(m))
}

// fakeProvider serves objects from memory. Values are registered with
// suiteLogs as secrets.
type fakeProvider struct {
	name string

	mu       sync.Mutex
	values   map[string]string
	versions map[string]int
	modes    map[string]fs.FileMode
	// failNext fails that many fetches with failErr.
	failNext int
	failErr  error
	// failAlways fails every fetch while set.
	failAlways error
	// block makes fetches wait until it is closed or the context ends.
	block chan struct{}
	// audiences are requested from the token source on every fetch.
	audiences []string
	tokens    []string
	calls     []time.Time
	currents  []map[string]string
	closed    atomic.Int32
}

func newFake(name string, values map[string]string) *fakeProvider {
	f := &fakeProvider{name: name, values: map[string]string{}, versions: map[string]int{}, modes: map[string]fs.FileMode{}}
	for k, v := range values {
		f.set(k, v)
	}
	return f
}

func (f *fakeProvider) Name() string { return f.name }

// set changes (or adds) an object, bumping its version.
func (f *fakeProvider) set(id, value string) {
	suiteLogs.Secret(value)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[id] = value
	f.versions[id]++
}

func (f *fakeProvider) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.values, id)
}

func (f *fakeProvider) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAlways = err
}

func (f *fakeProvider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	cur := map[string]string{}
	for k, v := range req.Current {
		cur[k] = v
	}
	f.currents = append(f.currents, cur)
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, aud := range f.audiences {
		tok, err := req.Identity.Tokens.Token(ctx, aud)
		if err != nil {
			return nil, &provider.Error{Class: req.Class.Key(), Provider: f.name, Reason: provider.ReasonUnauthenticated, Err: err}
		}
		f.tokens = append(f.tokens, tok)
	}
	if f.failNext > 0 {
		f.failNext--
		return nil, f.failErr
	}
	if f.failAlways != nil {
		return nil, f.failAlways
	}
	ids := []string{}
	if req.Class.Vault != nil {
		for _, o := range req.Class.Vault.Objects {
			ids = append(ids, o.ObjectName)
		}
	} else {
		for id := range f.values {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	var out []provider.Object
	for _, id := range ids {
		val, ok := f.values[id]
		if !ok {
			return nil, &provider.Error{Class: req.Class.Key(), Provider: f.name, Object: id, Reason: provider.ReasonNotFound, Err: errors.New("no such secret")}
		}
		ver := strconv.Itoa(f.versions[id])
		if req.Current[id] == ver {
			out = append(out, provider.Object{ID: id, Version: ver, Unchanged: true})
			continue
		}
		out = append(out, provider.Object{ID: id, Version: ver, Files: []atomicdir.File{{Path: id, Mode: f.modes[id], Data: []byte(val)}}})
	}
	return out, nil
}

func (f *fakeProvider) Close() error {
	f.closed.Add(1)
	return nil
}

func (f *fakeProvider) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

func (f *fakeProvider) callCount() int { return len(f.callTimes()) }

// wakingFake is a fakeProvider that implements provider.Waker.
type wakingFake struct {
	*fakeProvider
	wake chan struct{}
}

func (w *wakingFake) Wake() <-chan struct{} { return w.wake }

// testConfig builds an agent configuration of mode with one volume per
// class name, all served by provider "fake", under a temporary directory.
func testConfig(t *testing.T, mode agentconfig.Mode, interval time.Duration, classes ...string) *agentconfig.Config {
	t.Helper()
	cfg := &agentconfig.Config{APIVersion: agentconfig.APIVersion, Mode: mode, RotationInterval: agentconfig.Duration{Duration: interval}}
	root := t.TempDir()
	for _, c := range classes {
		cfg.Volumes = append(cfg.Volumes, agentconfig.Volume{
			Name:  c + "-vol",
			Path:  filepath.Join(root, c),
			Class: agentconfig.Class{Namespace: "team-a", Name: c, Provider: "fake", Parameters: map[string]string{"anything": "plugin parameters"}},
		})
	}
	return cfg
}

// harness is one agent run in the test process.
type harness struct {
	t        *testing.T
	addr     string
	termLog  string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	err      error
}

func startAgent(t *testing.T, cfg *agentconfig.Config, opts Options) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, addr: ln.Addr().String(), termLog: filepath.Join(t.TempDir(), "termination-log"), done: make(chan error, 1)}
	opts.Config = cfg
	opts.Listener = ln
	if opts.Pod == nil {
		opts.Pod = &identity.Pod{Namespace: "team-a", Name: "app-0", UID: "uid-1", ServiceAccount: "app"}
	}
	if opts.LogOutput == nil {
		opts.LogOutput = suiteLogs.Tee(t)
	}
	if opts.TerminationLog == "" {
		opts.TerminationLog = h.termLog
	}
	if opts.RetryBase == 0 {
		opts.RetryBase = 10 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		err := Run(ctx, opts)
		if err != nil {
			note("Run returned: %v", err)
		}
		h.done <- err
	}()
	t.Cleanup(func() { _, _ = h.stop(5 * time.Second) })
	return h
}

// stop cancels the agent (what SIGTERM does) and waits for Run to return.
func (h *harness) stop(within time.Duration) (time.Duration, error) {
	start := time.Now()
	h.stopOnce.Do(func() {
		h.cancel()
		select {
		case h.err = <-h.done:
		case <-time.After(within):
			h.t.Errorf("agent did not stop within %s of cancellation", within)
		}
	})
	return time.Since(start), h.err
}

// wait returns Run's result when it returns by itself.
func (h *harness) wait(within time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.stopOnce.Do(func() { h.err = err })
		return err
	case <-time.After(within):
		h.t.Fatalf("agent did not return within %s", within)
		return nil
	}
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.addr + path)
	if err != nil {
		// Not up yet (or gone): callers poll.
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	note("GET %s: %d %s", path, resp.StatusCode, b)
	return resp.StatusCode, string(b)
}

func (h *harness) waitReady(within time.Duration) {
	h.t.Helper()
	eventually(h.t, within, "ready", func() bool { c, _ := h.get("/readyz"); return c == 200 })
}

// metric returns the value of the sample of name whose labels include
// want, or -1 when there is none.
func (h *harness) metric(name string, want map[string]string) float64 {
	h.t.Helper()
	_, body := h.get("/metrics")
	return metricValue(body, name, want)
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)

func metricValue(body, name string, want map[string]string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		m := sampleRE.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		ok := true
		for k, v := range want {
			if labels[k] != v {
				ok = false
			}
		}
		if ok {
			v, _ := strconv.ParseFloat(m[3], 64)
			return v
		}
	}
	return -1
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func dataTarget(t *testing.T, dir string) string {
	t.Helper()
	s, err := os.Readlink(filepath.Join(dir, atomicdir.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ---- helper processes: the agent as a real process in a real namespace

// helperEnv selects a helper mode of the test binary.
const helperEnv = "SSI_AGENT_TEST_HELPER"

// fileProvider serves each regular file of Dir as an object whose version
// is its content hash; tests change backend values by writing files.
type fileProvider struct{ dir string }

func (fileProvider) Name() string { return "fake" }

func (p fileProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	des, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, &provider.Error{Class: req.Class.Key(), Provider: "fake", Reason: provider.ReasonUnavailable, Err: err}
	}
	var out []provider.Object
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.dir, de.Name()))
		if err != nil {
			return nil, &provider.Error{Class: req.Class.Key(), Provider: "fake", Object: de.Name(), Reason: provider.ReasonUnavailable, Err: err}
		}
		sum := sha256.Sum256(b)
		ver := hex.EncodeToString(sum[:8])
		if req.Current[de.Name()] == ver {
			out = append(out, provider.Object{ID: de.Name(), Version: ver, Unchanged: true})
			continue
		}
		out = append(out, provider.Object{ID: de.Name(), Version: ver, Files: []atomicdir.File{{Path: de.Name(), Data: b}}})
	}
	return out, nil
}

// helperRun is `ssi-agent run` with the file-backed provider, configured
// from the environment exactly as in a pod, stopped by real signals.
func helperRun() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := Run(ctx, Options{
		Providers:      provider.NewSet(fileProvider{dir: os.Getenv("SSI_FAKE_DIR")}),
		TerminationLog: os.Getenv("SSI_TERMINATION_LOG"),
		RetryBase:      10 * time.Millisecond,
		RetryMax:       100 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ssi-agent:", err)
		return 1
	}
	return 0
}

// helperList prints what ProcScanner finds, from inside a namespace, as
// PID:container pairs.
func helperList() int {
	procs, err := ProcScanner{PodUID: os.Getenv(agentconfig.EnvPodUID)}.MainProcesses()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var out []string
	for _, p := range procs {
		out = append(out, fmt.Sprintf("%d:%s", p.PID, p.Container))
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// note adds a line to the suite's captured output.
func note(format string, args ...any) {
	_, _ = fmt.Fprintf(suiteLogs, format+"\n", args...)
}
