package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

func TestSidecarFetchReadyRotateStop(t *testing.T) {
	db := newFake("fake", map[string]string{"db-password": "pw-value-0001", "api-key": "key-value-0001"})
	db.block = make(chan struct{})
	cfg := testConfig(t, agentconfig.ModeSidecar, 100*time.Millisecond, "db")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(db)})
	dir := cfg.Volumes[0].Path

	// Before the first fetch completes: alive, not ready, and the reason
	// names the volume and class.
	eventually(t, 5*time.Second, "fetching", func() bool { return db.callCount() > 0 })
	if code, _ := h.get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d before the first fetch", code)
	}
	code, body := h.get("/readyz")
	if code != 503 || !strings.Contains(body, "db-vol") || !strings.Contains(body, "team-a/db") {
		t.Errorf("/readyz before the first fetch = %d %q, want 503 naming the volume and class", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "db-password")); err == nil {
		t.Error("file exists before the fetch completed")
	}
	close(db.block)
	h.waitReady(5 * time.Second)
	if got := readFile(t, filepath.Join(dir, "db-password")); got != "pw-value-0001" {
		t.Errorf("db-password = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "api-key")); got != "key-value-0001" {
		t.Errorf("api-key = %q", got)
	}

	// A change in the backend reaches the file within one interval.
	gen := dataTarget(t, dir)
	changedAt := time.Now()
	db.set("db-password", "pw-value-0002")
	eventually(t, 2*time.Second, "rotated", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "db-password"))
		return string(b) == "pw-value-0002"
	})
	took := time.Since(changedAt)
	if took > 100*time.Millisecond+400*time.Millisecond { // one interval, a fetch and a loaded machine
		t.Errorf("change took %s to reach the file; the interval is 100ms", took)
	}
	if dataTarget(t, dir) == gen {
		t.Error("..data did not move")
	}
	// Unchanged rotations do not swap.
	gen = dataTarget(t, dir)
	calls := db.callCount()
	eventually(t, 2*time.Second, "several unchanged rotations", func() bool { return db.callCount() >= calls+3 })
	if dataTarget(t, dir) != gen {
		t.Error("unchanged rotations swapped ..data")
	}
	// Rotations pass the versions written, so unchanged objects cost no
	// content fetch.
	db.mu.Lock()
	last := db.currents[len(db.currents)-1]
	db.mu.Unlock()
	if last["db-password"] != "2" || last["api-key"] != "1" {
		t.Errorf("Current = %v, want db-password:2 api-key:1", last)
	}

	took, err := h.stop(2 * time.Second)
	if err != nil {
		t.Errorf("Run after cancellation = %v, want nil", err)
	}
	if took > time.Second {
		t.Errorf("stopping took %s", took)
	}
	if db.closed.Load() != 1 {
		t.Errorf("provider closed %d times, want 1", db.closed.Load())
	}
	if _, err := os.Stat(h.termLog); err == nil {
		t.Error("a clean stop wrote a termination message")
	}
}

func TestFirstFetchRetriesWithBackoff(t *testing.T) {
	f := newFake("fake", map[string]string{"token": "retry-value-01"})
	f.failNext = 4
	f.failErr = &provider.Error{Class: "team-a/app", Provider: "fake", Reason: provider.ReasonUnavailable, Err: errors.New("connection refused")}
	cfg := testConfig(t, agentconfig.ModeInitOnly, 0, "app")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f), RetryBase: 20 * time.Millisecond, RetryMax: time.Second})
	if err := h.wait(5 * time.Second); err != nil {
		t.Fatalf("init-only Run = %v", err)
	}
	calls := f.callTimes()
	if len(calls) != 5 {
		t.Fatalf("%d fetches, want 4 failures and 1 success", len(calls))
	}
	// Exponential with jitter over the upper half: gap n >= base*2^(n-1)/2.
	for i := 1; i < len(calls); i++ {
		gap := calls[i].Sub(calls[i-1])
		min := 20 * time.Millisecond << (i - 1) / 2
		if gap < min {
			t.Errorf("retry %d after %s, want at least %s", i, gap, min)
		}
	}
	if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "token")); got != "retry-value-01" {
		t.Errorf("token = %q", got)
	}
	if _, err := os.Stat(h.termLog); err == nil {
		t.Error("a successful run wrote a termination message")
	}
}

func TestFirstFetchFailureTerminationMessage(t *testing.T) {
	denied := &provider.Error{Class: "team-a/app", Provider: "fake", Object: "db-password", Reason: provider.ReasonAccessDenied,
		Err: errors.New(`permission denied on path "secret/data/db"`)}
	tests := map[string]struct {
		setup func(f *fakeProvider, cfg *agentconfig.Config)
		// want are substrings of the termination message and error.
		want []string
		// fast means the agent must give up before the timeout.
		fast bool
	}{
		"access denied until the deadline": {
			setup: func(f *fakeProvider, _ *agentconfig.Config) { f.setFail(denied) },
			want:  []string{"first fetch did not complete within 300ms", "volume app-vol", "SecretProviderClass team-a/app", `object "db-password"`, "AccessDenied", `permission denied on path "secret/data/db"`},
		},
		"backend never answers": {
			setup: func(f *fakeProvider, _ *agentconfig.Config) { f.block = make(chan struct{}) },
			want:  []string{"first fetch did not complete within 300ms", "volume app-vol", "SecretProviderClass team-a/app", "no answer from provider fake within 300ms"},
		},
		"object missing": {
			setup: func(f *fakeProvider, _ *agentconfig.Config) {
				f.setFail(&provider.Error{Class: "team-a/app", Provider: "fake", Object: "api-key", Reason: provider.ReasonNotFound, Err: errors.New("secret not found")})
			},
			want: []string{"SecretProviderClass team-a/app", `object "api-key"`, "NotFound", "secret not found"},
		},
		"invalid configuration gives up at once": {
			setup: func(f *fakeProvider, _ *agentconfig.Config) {
				f.setFail(&provider.Error{Class: "team-a/app", Provider: "fake", Object: "db-password", Reason: provider.ReasonInvalidConfig, Err: errors.New("role is not configured")})
			},
			want: []string{"SecretProviderClass team-a/app", `object "db-password"`, "InvalidConfig", "role is not configured"},
			fast: true,
		},
		"provider not built in": {
			setup: func(_ *fakeProvider, cfg *agentconfig.Config) { cfg.Volumes[0].Class.Provider = "azure-plugin" },
			want:  []string{"volume app-vol", "SecretProviderClass team-a/app", `provider "azure-plugin" is not available`},
			fast:  true,
		},
		"class parameters do not parse": {
			setup: func(_ *fakeProvider, cfg *agentconfig.Config) {
				cfg.Volumes[0].Class.Provider = "vault"
				cfg.Volumes[0].Class.Parameters = map[string]string{"objects": "- objectName: x\n  secretPath: secret/data/x\n"}
			},
			want: []string{"volume app-vol", "SecretProviderClass team-a/app", "roleName", "is required"},
			fast: true,
		},
		"bad reload signal": {
			setup: func(_ *fakeProvider, cfg *agentconfig.Config) { cfg.ReloadSignal = "SIGWHAT" },
			want:  []string{"reloadSignal", `unknown signal "SIGWHAT"`},
			fast:  true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake("fake", map[string]string{"db-password": "never-shown-01", "api-key": "never-shown-02"})
			cfg := testConfig(t, agentconfig.ModeSidecar, time.Second, "app")
			cfg.FirstFetchTimeout.Duration = 300 * time.Millisecond
			tc.setup(f, cfg)
			start := time.Now()
			h := startAgent(t, cfg, Options{Providers: provider.NewSet(f)})
			err := h.wait(5 * time.Second)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			msg, rerr := os.ReadFile(h.termLog)
			if rerr != nil {
				t.Fatalf("no termination message: %v", rerr)
			}
			note("termination message: %s", msg)
			if string(msg) != err.Error() {
				t.Errorf("termination message %q differs from the error %q", msg, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(msg), w) {
					t.Errorf("termination message %q lacks %q", msg, w)
				}
			}
			for _, v := range []string{"never-shown-01", "never-shown-02"} {
				if strings.Contains(string(msg), v) {
					t.Errorf("termination message holds a secret value")
				}
			}
			if tc.fast && took > 250*time.Millisecond {
				t.Errorf("gave up after %s; a configuration error must not wait for the deadline", took)
			}
			if !tc.fast && took < 300*time.Millisecond {
				t.Errorf("gave up after %s, before the 300ms deadline", took)
			}
		})
	}
}

func TestTerminationMessageTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "termination-log")
	writeTerminationMessage(path, strings.Repeat("x", 10000))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != maxTerminationMessage || !strings.HasSuffix(string(b), "...") {
		t.Errorf("termination message of %d bytes, want %d ending in ...", len(b), maxTerminationMessage)
	}
}

func TestRotationFailureKeepsLastGoodFiles(t *testing.T) {
	f := newFake("fake", map[string]string{"db-password": "good-value-001"})
	cfg := testConfig(t, agentconfig.ModeSidecar, 50*time.Millisecond, "app")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f), RetryBase: 20 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	dir := cfg.Volumes[0].Path
	h.waitReady(5 * time.Second)
	gen := dataTarget(t, dir)
	labels := map[string]string{"volume": "app-vol", "class": "team-a/app", "provider": "fake"}

	f.setFail(&provider.Error{Class: "team-a/app", Provider: "fake", Reason: provider.ReasonUnavailable, Err: errors.New("connection refused")})
	failStart := f.callCount()
	f.set("db-password", "unseen-value-002") // changed behind the outage
	eventually(t, 5*time.Second, "six failed rotations", func() bool { return f.callCount() >= failStart+6 })

	if got := readFile(t, filepath.Join(dir, "db-password")); got != "good-value-001" {
		t.Errorf("during the outage db-password = %q, want the last good value", got)
	}
	if dataTarget(t, dir) != gen {
		t.Error("..data moved during the outage")
	}
	if code, _ := h.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d during the outage; the files are still there", code)
	}
	if n := h.metric("ssi_agent_volume_consecutive_failures", labels); n < 6 {
		t.Errorf("consecutive failures = %v, want >= 6", n)
	}
	stale := h.metric("ssi_agent_volume_staleness_seconds", labels)
	if stale < 0.1 {
		t.Errorf("staleness = %vs during the outage", stale)
	}
	if n := h.metric("ssi_agent_errors_total", map[string]string{"provider": "fake", "reason": "Unavailable"}); n < 6 {
		t.Errorf("errors_total{reason=Unavailable} = %v", n)
	}
	if n := h.metric("ssi_agent_rotations_total", map[string]string{"provider": "fake", "result": "error"}); n < 6 {
		t.Errorf("rotations_total{result=error} = %v", n)
	}
	// Backoff: with a 50ms interval and retries from 20ms doubling to
	// 400ms, later gaps grow beyond the interval.
	calls := f.callTimes()[failStart:]
	last := calls[len(calls)-1].Sub(calls[len(calls)-2])
	if last < 80*time.Millisecond {
		t.Errorf("gap between the last failed retries is %s; backoff did not grow", last)
	}

	f.setFail(nil)
	eventually(t, 5*time.Second, "recovered", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "db-password"))
		return string(b) == "unseen-value-002"
	})
	eventually(t, 2*time.Second, "failures reset", func() bool {
		return h.metric("ssi_agent_volume_consecutive_failures", labels) == 0
	})
	if s := h.metric("ssi_agent_volume_staleness_seconds", labels); s > 1 {
		t.Errorf("staleness after recovery = %v", s)
	}
}

func TestWakerTriggersEarlyFetch(t *testing.T) {
	f := &wakingFake{fakeProvider: newFake("fake", map[string]string{"lease": "lease-value-01"}), wake: make(chan struct{})}
	cfg := testConfig(t, agentconfig.ModeSidecar, time.Hour, "a", "b")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f)})
	h.waitReady(5 * time.Second)
	calls := f.callCount()
	f.set("lease", "lease-value-02")
	f.wake <- struct{}{}
	for _, v := range cfg.Volumes {
		eventually(t, 2*time.Second, "woken fetch of "+v.Name, func() bool {
			b, _ := os.ReadFile(filepath.Join(v.Path, "lease"))
			return string(b) == "lease-value-02"
		})
	}
	if got := f.callCount(); got != calls+2 {
		t.Errorf("%d fetches after one wake, want one per volume (2)", got-calls)
	}
	_, _ = h.stop(2 * time.Second)
	if f.closed.Load() != 1 {
		t.Errorf("shared provider closed %d times, want once", f.closed.Load())
	}
}

// recordingProcesses is a Processes that records signals.
type recordingProcesses struct {
	mu    sync.Mutex
	procs []Process
	sent  []string
}

func (p *recordingProcesses) MainProcesses() ([]Process, error) { return p.procs, nil }

func (p *recordingProcesses) Signal(pid int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, fmt.Sprintf("%d:%d", pid, sig))
	return nil
}

func (p *recordingProcesses) signals() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

func TestReloadSignalAfterChangingRotation(t *testing.T) {
	procs := []Process{{PID: 41, Container: "web"}, {PID: 42, Container: "istio-proxy"}, {PID: 43, Container: "worker"}, {PID: 44}}
	tests := map[string]struct {
		targets    []string
		wantPIDs   []int
		wantErrors float64
	}{
		"the listed containers":                {targets: []string{"web", "worker"}, wantPIDs: []int{41, 43}},
		"a listed container without a process": {targets: []string{"web", "batch"}, wantPIDs: []int{41}, wantErrors: 1},
		// A configuration of the previous webhook lists none: every main
		// process, as then.
		"previous configuration": {wantPIDs: []int{41, 42, 43, 44}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake("fake", map[string]string{"cfg": "reload-value-01"})
			cfg := testConfig(t, agentconfig.ModeSidecar, 30*time.Millisecond, "app")
			cfg.ReloadSignal = "hup"
			cfg.ReloadContainers = tc.targets
			rec := &recordingProcesses{procs: procs}
			h := startAgent(t, cfg, Options{Providers: provider.NewSet(f), Processes: rec})
			h.waitReady(5 * time.Second)
			calls := f.callCount()
			eventually(t, 2*time.Second, "unchanged rotations", func() bool { return f.callCount() >= calls+3 })
			if s := rec.signals(); len(s) != 0 {
				t.Fatalf("signals after the first fetch and unchanged rotations: %v", s)
			}
			f.set("cfg", "reload-value-02")
			eventually(t, 2*time.Second, "signalled", func() bool { return len(rec.signals()) >= len(tc.wantPIDs) })
			var want []string
			for _, pid := range tc.wantPIDs {
				want = append(want, fmt.Sprintf("%d:%d", pid, syscall.SIGHUP))
			}
			// The signal comes after the new content is readable.
			if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "cfg")); got != "reload-value-02" {
				t.Errorf("cfg = %q after the signal", got)
			}
			calls = f.callCount()
			eventually(t, 2*time.Second, "more unchanged rotations", func() bool { return f.callCount() >= calls+3 })
			if got := strings.Join(rec.signals(), ","); got != strings.Join(want, ",") {
				t.Errorf("signals %s, want %s", got, strings.Join(want, ","))
			}
			if n := h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "sent"}); n != float64(len(want)) {
				t.Errorf("reload_signals_total{sent} = %v, want %d", n, len(want))
			}
			if n := h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "error"}); max(n, 0) != tc.wantErrors {
				t.Errorf("reload_signals_total{error} = %v, want %v", n, tc.wantErrors)
			}
		})
	}
}

func TestModes(t *testing.T) {
	tests := map[string]struct {
		mode agentconfig.Mode
		// prewritten runs an init container's write first.
		prewritten bool
		// returns is true when Run ends by itself with nil.
		returns bool
		// fetchesBeforeInterval is how many fetches happen before the
		// first rotation interval (1h) could pass.
		fetchesBeforeInterval int
		readyBeforeFetch      bool
	}{
		"sidecar":                        {mode: agentconfig.ModeSidecar, fetchesBeforeInterval: 1},
		"init-only":                      {mode: agentconfig.ModeInitOnly, returns: true, fetchesBeforeInterval: 1},
		"init":                           {mode: agentconfig.ModeInit, returns: true, fetchesBeforeInterval: 1},
		"rotate after the init wrote":    {mode: agentconfig.ModeRotate, prewritten: true, fetchesBeforeInterval: 0, readyBeforeFetch: true},
		"rotate without files fetches":   {mode: agentconfig.ModeRotate, fetchesBeforeInterval: 1},
		"sidecar over files from before": {mode: agentconfig.ModeSidecar, prewritten: true, fetchesBeforeInterval: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake("fake", map[string]string{"obj": "mode-value-0001"})
			cfg := testConfig(t, tc.mode, time.Hour, "app")
			if tc.prewritten {
				init := *cfg
				init.Mode = agentconfig.ModeInit
				h := startAgent(t, &init, Options{Providers: provider.NewSet(f)})
				if err := h.wait(5 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			before := f.callCount()
			h := startAgent(t, cfg, Options{Providers: provider.NewSet(f)})
			if tc.returns {
				if err := h.wait(5 * time.Second); err != nil {
					t.Fatalf("Run = %v", err)
				}
			} else {
				if tc.readyBeforeFetch {
					h.waitReady(5 * time.Second)
					time.Sleep(100 * time.Millisecond)
				} else {
					eventually(t, 5*time.Second, "fetched", func() bool { return f.callCount() > before })
					h.waitReady(5 * time.Second)
				}
			}
			if got := f.callCount() - before; got != tc.fetchesBeforeInterval {
				t.Errorf("%d fetches, want %d", got, tc.fetchesBeforeInterval)
			}
			if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "obj")); got != "mode-value-0001" {
				t.Errorf("obj = %q", got)
			}
			if !tc.returns {
				if _, err := h.stop(2 * time.Second); err != nil {
					t.Errorf("Run = %v", err)
				}
			}
		})
	}
}

func TestRemovedObjectDisappears(t *testing.T) {
	f := newFake("fake", map[string]string{"keep": "keep-value-001", "drop": "drop-value-001"})
	cfg := testConfig(t, agentconfig.ModeSidecar, 30*time.Millisecond, "app")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f)})
	h.waitReady(5 * time.Second)
	f.remove("drop")
	dir := cfg.Volumes[0].Path
	eventually(t, 2*time.Second, "removed", func() bool {
		_, err := os.Lstat(filepath.Join(dir, "drop"))
		return errors.Is(err, os.ErrNotExist)
	})
	if got := readFile(t, filepath.Join(dir, "keep")); got != "keep-value-001" {
		t.Errorf("keep = %q", got)
	}
}

func TestMetricsExposition(t *testing.T) {
	f := newFake("fake", map[string]string{"a": "metric-value-01"})
	g := newFake("other", map[string]string{"b": "metric-value-02"})
	cfg := testConfig(t, agentconfig.ModeSidecar, 40*time.Millisecond, "one", "two")
	cfg.Volumes[1].Class.Provider = "other"
	start := time.Now()
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f, g)})
	h.waitReady(5 * time.Second)
	eventually(t, 2*time.Second, "an unchanged rotation", func() bool {
		return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "fake", "result": "unchanged"}) >= 1
	})
	f.set("a", "metric-value-03")
	eventually(t, 2*time.Second, "a changing rotation", func() bool {
		return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "fake", "result": "changed"}) == 1
	})
	g.setFail(&provider.Error{Class: "team-a/two", Provider: "other", Reason: provider.ReasonThrottled, Err: errors.New("rate exceeded")})
	eventually(t, 2*time.Second, "a throttled rotation", func() bool {
		return h.metric("ssi_agent_errors_total", map[string]string{"provider": "other", "reason": "Throttled"}) >= 1
	})
	_, body := h.get("/metrics")
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"ssi_agent_fetches_total", map[string]string{"provider": "fake", "result": "success"}, 3},
		{"ssi_agent_fetches_total", map[string]string{"provider": "other", "result": "error"}, 1},
		{"ssi_agent_rotations_total", map[string]string{"provider": "fake", "result": "unchanged"}, 1},
		{"ssi_agent_rotations_total", map[string]string{"provider": "fake", "result": "changed"}, 1},
		{"ssi_agent_rotations_total", map[string]string{"provider": "other", "result": "error"}, 1},
		{"ssi_agent_errors_total", map[string]string{"provider": "other", "reason": "Throttled"}, 1},
		{"ssi_agent_volume_ready", map[string]string{"volume": "one-vol", "class": "team-a/one", "provider": "fake"}, 1},
		{"ssi_agent_volume_ready", map[string]string{"volume": "two-vol", "class": "team-a/two", "provider": "other"}, 1},
		{"ssi_agent_volume_last_success_timestamp_seconds", map[string]string{"volume": "one-vol"}, float64(start.Unix())},
		{"ssi_agent_volume_staleness_seconds", map[string]string{"volume": "one-vol"}, 0},
		{"ssi_agent_volume_consecutive_failures", map[string]string{"volume": "two-vol"}, 1},
		{"process_resident_memory_bytes", nil, 1},
		{"go_goroutines", nil, 1},
	}
	for _, c := range checks {
		if v := metricValue(body, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want >= %v", c.name, c.labels, v, c.min)
		}
	}
	if v := metricValue(body, "ssi_agent_volume_last_success_timestamp_seconds", map[string]string{"volume": "one-vol"}); v > float64(time.Now().Unix()+1) {
		t.Errorf("last success %v is in the future", v)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "metric-value") {
			t.Errorf("metrics hold a value: %s", line)
		}
	}
}

func TestJSONLogs(t *testing.T) {
	f := newFake("fake", map[string]string{"a": "json-log-value-1"})
	cfg := testConfig(t, agentconfig.ModeInitOnly, 0, "app")
	cfg.LogFormat = "json"
	buf := logcheck.New()
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f), LogOutput: buf})
	if err := h.wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	note("%s", buf.Text())
	lines := strings.Split(strings.TrimSpace(buf.Text()), "\n")
	if len(lines) < 2 {
		t.Fatalf("logs: %q", buf.Text())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"msg":`) {
			t.Errorf("not a JSON log line: %s", l)
		}
	}
	if !strings.Contains(buf.Text(), `"msg":"files published"`) || !strings.Contains(buf.Text(), `"class":"team-a/app"`) {
		t.Errorf("no publish line naming the class: %s", buf.Text())
	}
}

func TestRunDecodesEnvironment(t *testing.T) {
	f := newFake("fake", map[string]string{"a": "env-value-0001"})
	f.audiences = []string{"vault"}
	cfg := testConfig(t, agentconfig.ModeInitOnly, 0, "app")
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("projected-token-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	suiteLogs.Secret("projected-token-xyz")
	cfg.Tokens = []agentconfig.Token{{Audience: "vault", Path: tokFile}}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(agentconfig.EnvConfig, enc)
	t.Setenv(agentconfig.EnvPodNamespace, "team-a")
	t.Setenv(agentconfig.EnvPodName, "app-0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Run(ctx, Options{
		Providers:      provider.NewSet(f),
		LogOutput:      suiteLogs.Tee(t),
		TerminationLog: "-",
		Listener:       mustListen(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "a")); got != "env-value-0001" {
		t.Errorf("a = %q", got)
	}
	if len(f.tokens) != 1 || f.tokens[0] != "projected-token-xyz" {
		t.Errorf("provider got tokens %d, want the projected file's", len(f.tokens))
	}

	t.Setenv(agentconfig.EnvConfig, "")
	err = Run(ctx, Options{Providers: provider.NewSet(f), LogOutput: suiteLogs.Tee(t), TerminationLog: "-", Listener: mustListen(t)})
	if err == nil || !strings.Contains(err.Error(), agentconfig.EnvConfig) {
		t.Errorf("Run without configuration = %v", err)
	}
}
