package agent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testenv"
)

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    procStat
		wantErr bool
	}{
		"plain":            {in: "7 (nginx) S 0 7 7 0 -1 4194560 1 0", want: procStat{state: 'S', ppid: 0, flags: 4194560}},
		"child":            {in: "8 (sh) R 7 7 7 0 -1 4194304 1 0", want: procStat{state: 'R', ppid: 7, flags: 4194304}},
		"name with spaces": {in: "9 (my app) S 0 9 9 0 -1 0 1", want: procStat{state: 'S', ppid: 0}},
		"name with parens": {in: "10 (a) S 3 (b)) Z 0 10 10 0 -1 0 1", want: procStat{state: 'Z', ppid: 0}},
		"kernel thread":    {in: "2 (kthreadd) S 0 0 0 0 -1 2129984 0", want: procStat{state: 'S', ppid: 0, flags: 2129984}},
		"no name":          {in: "11 S 0", wantErr: true},
		"truncated":        {in: "12 (x) S 0", wantErr: true},
		"bad ppid":         {in: "13 (x) S x 0 0 0 0 0 0", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("parseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestProcScannerFakeTree(t *testing.T) {
	root := t.TempDir()
	stat := func(pid int, name string, state byte, ppid int, flags uint64) {
		d := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 %d 100 0 0 0\n", pid, name, state, ppid, pid, pid, flags)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat(1, "pause", 'S', 0, 4194560)
	stat(2, "kthreadd", 'S', 0, pfKthread|0x40)
	stat(7, "nginx: master", 'S', 0, 4194560)
	stat(8, "nginx: worker", 'S', 7, 4194560)
	stat(9, "ssi-agent", 'S', 0, 4194560) // self
	stat(10, "dead (app)", 'Z', 0, 4194560)
	stat(23, "python3", 'R', 0, 4194304)
	stat(24, "gunicorn", 'S', 23, 4194304)
	_ = os.MkdirAll(filepath.Join(root, "30"), 0o755) // exited: no stat
	_ = os.MkdirAll(filepath.Join(root, "net"), 0o755)
	_ = os.Symlink("9", filepath.Join(root, "self"))

	got, err := ProcScanner{Root: root, Self: 9}.MainProcesses()
	if err != nil {
		t.Fatal(err)
	}
	sort.Ints(got)
	if want := []int{7, 23}; !reflect.DeepEqual(got, want) {
		t.Errorf("MainProcesses = %v, want %v", got, want)
	}
}

func TestParseSignal(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    syscall.Signal
		wantErr bool
	}{
		"full name":  {in: "SIGHUP", want: syscall.SIGHUP},
		"short":      {in: "HUP", want: syscall.SIGHUP},
		"lower case": {in: "sigusr1", want: syscall.SIGUSR1},
		"spaces":     {in: " SIGUSR2 ", want: syscall.SIGUSR2},
		"term":       {in: "SIGTERM", want: syscall.SIGTERM},
		"number":     {in: "1", want: syscall.SIGHUP},
		"unknown":    {in: "SIGWHAT", wantErr: true},
		"kill":       {in: "SIGKILL", wantErr: true},
		"stop":       {in: "STOP", wantErr: true},
		"zero":       {in: "0", wantErr: true},
		"too big":    {in: "99", wantErr: true},
		"empty":      {in: "", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSignal(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseSignal(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// pod is a shared PID namespace built the way a container runtime builds a
// pod with shareProcessNamespace: a pause process as PID 1, and each
// container's main process entered into the namespace from outside (so its
// parent PID reads 0 inside).
type pod struct {
	t     *testing.T
	pause int // host PID of the namespace's PID 1
	procs []*exec.Cmd
}

func needNamespaces(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("creates PID and mount namespaces; skipped with -short")
	}
	for _, b := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not found", b)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create PID namespaces")
	}
}

func newPod(t *testing.T) *pod {
	t.Helper()
	p := &pod{t: t}
	pause := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sleep", "3600")
	pause.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pause.Start(); err != nil {
		t.Fatal(err)
	}
	p.procs = append(p.procs, pause)
	t.Cleanup(p.stop)
	// unshare forks the namespace's PID 1; find its host PID.
	eventually(t, 5*time.Second, "pause started", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pause.Process.Pid, pause.Process.Pid))
		if err != nil || len(strings.Fields(string(b))) == 0 {
			return false
		}
		p.pause, _ = strconv.Atoi(strings.Fields(string(b))[0])
		return p.pause > 0
	})
	return p
}

// enter starts argv as a new container's main process in the pod.
func (p *pod) enter(env []string, argv ...string) *exec.Cmd {
	p.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(p.pause), "-p", "-m", "--"}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.procs = append(p.procs, cmd)
	return cmd
}

func (p *pod) stop() {
	// Killing PID 1 of the namespace kills every process in it.
	if p.pause > 0 {
		_ = syscall.Kill(p.pause, syscall.SIGKILL)
	}
	for _, c := range p.procs {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// TestReloadSignalRealNamespace runs the agent (this test binary in its
// helper mode) as a container of a real shared-PID-namespace pod next to
// two app containers, and checks that the /proc scan finds exactly the
// apps' main processes and that a changing rotation signals both of them,
// while unchanged rotations do not.
func TestReloadSignalRealNamespace(t *testing.T) {
	needNamespaces(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := newPod(t)
	tmp := t.TempDir()
	app := func(name string) (string, string) {
		out := filepath.Join(tmp, name+".log")
		// The main process traps SIGHUP; its sleep children must not be
		// signalled (they would die of it and the loop would log that).
		script := `trap 'echo reload >> "$0"' HUP; echo "started $$" >> "$0"; while :; do sleep 0.05 || echo child-killed >> "$0"; done`
		p.enter(nil, "/bin/sh", "-c", script, out)
		var pid string
		eventually(t, 5*time.Second, name+" started", func() bool {
			b, _ := os.ReadFile(out)
			_, after, ok := strings.Cut(string(b), "started ")
			pid = strings.TrimSpace(after)
			return ok && pid != ""
		})
		return out, pid
	}
	web, webPID := app("web")
	worker, workerPID := app("worker")

	// What the scanner sees from inside the pod.
	list := exec.Command("nsenter", "-t", strconv.Itoa(p.pause), "-p", "-m", "--", self)
	list.Env = append(os.Environ(), helperEnv+"=list")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("list helper: %v", err)
	}
	pids := strings.Fields(strings.Trim(strings.TrimSpace(string(out)), "[]"))
	// Not PID 1 (pause), not the apps' children, not the lister itself.
	if want := webPID + "," + workerPID; strings.Join(pids, ",") != want {
		t.Errorf("main processes seen in the pod = %v, want %s (the two apps' shells)", pids, want)
	}

	src := filepath.Join(tmp, "backend")
	staging := filepath.Join(tmp, "staging")
	for _, d := range []string{src, staging} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// write changes the backend's value atomically, as a real backend
	// does: written next to the backend directory and renamed into it, so
	// a rotation reads the old value or the new one. (os.WriteFile in
	// place truncates first; a rotation that read the file between the
	// truncation and the write saw a change to "" and a second change to
	// the new value, and sent two signals.)
	write := func(v string) {
		suiteLogs.Secret(v)
		f := filepath.Join(staging, "app.conf")
		if err := os.WriteFile(f, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f, filepath.Join(src, "app.conf")); err != nil {
			t.Fatal(err)
		}
	}
	write("conf-value-0001")
	vol := filepath.Join(tmp, "vol")
	port := testenv.FreeAddr(t)
	cfg := &agentconfig.Config{
		Mode:             agentconfig.ModeSidecar,
		RotationInterval: agentconfig.Duration{Duration: 50 * time.Millisecond},
		ReloadSignal:     "SIGHUP",
		HealthAddr:       port,
		Volumes: []agentconfig.Volume{{Name: "secrets", Path: vol,
			Class: agentconfig.Class{Namespace: "team-a", Name: "app", Provider: "fake"}}},
	}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	agentCmd := p.enter([]string{helperEnv + "=run", agentconfig.EnvConfig + "=" + enc, "SSI_FAKE_DIR=" + src, "SSI_TERMINATION_LOG=-"}, self)
	_ = agentCmd
	h := &harness{t: t, addr: port}
	h.waitReady(10 * time.Second)
	rotations := func(result string) float64 {
		return h.metric("ssi_agent_rotations_total", map[string]string{"result": result})
	}
	reloads := func(f string) string {
		b, _ := os.ReadFile(f)
		return string(b)
	}
	// Several unchanged rotations: no signal.
	eventually(t, 5*time.Second, "unchanged rotations", func() bool { return rotations("unchanged") >= 3 })
	for _, f := range []string{web, worker} {
		if b := reloads(f); strings.Contains(b, "reload") {
			t.Fatalf("%s reloaded before anything changed: %q", filepath.Base(f), b)
		}
	}
	write("conf-value-0002")
	for _, f := range []string{web, worker} {
		eventually(t, 5*time.Second, "reload of "+filepath.Base(f), func() bool { return strings.Contains(reloads(f), "reload") })
	}
	if got := readFile(t, filepath.Join(vol, "app.conf")); got != "conf-value-0002" {
		t.Errorf("app.conf = %q", got)
	}
	// A few more rotations: a second change, or a late signal, shows now.
	unchanged := rotations("unchanged")
	eventually(t, 5*time.Second, "unchanged rotations after the change", func() bool { return rotations("unchanged") >= unchanged+3 })
	if n := rotations("changed"); n != 1 {
		t.Errorf("%v changing rotations after one change of the backend, want 1", n)
	}
	if n := h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "sent"}); n != 2 {
		t.Errorf("reload_signals_total{sent} = %v, want 2", n)
	}
	for _, f := range []string{web, worker} {
		if b := reloads(f); strings.Count(b, "reload") != 1 || strings.Contains(b, "child-killed") {
			t.Errorf("%s: %q, want exactly one reload and no signalled children", filepath.Base(f), b)
		}
	}
}

// TestSIGTERMStopsPromptly runs the agent as a real process and stops it
// with a real SIGTERM, during rotation and during a failing first fetch.
func TestSIGTERMStopsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		backend  bool // false: the backend is unreachable, the first fetch keeps failing
		wantCode int
		wantMsg  string
	}{
		"while rotating":         {backend: true, wantCode: 0},
		"during the first fetch": {backend: false, wantCode: 1, wantMsg: "stopped before the first fetch completed: volume secrets: SecretProviderClass team-a/app (provider fake): Unavailable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			src := filepath.Join(tmp, "backend")
			if tc.backend {
				if err := os.MkdirAll(src, 0o755); err != nil {
					t.Fatal(err)
				}
				suiteLogs.Secret("term-value-0001")
				if err := os.WriteFile(filepath.Join(src, "x"), []byte("term-value-0001"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			port := testenv.FreeAddr(t)
			cfg := &agentconfig.Config{
				Mode:             agentconfig.ModeSidecar,
				RotationInterval: agentconfig.Duration{Duration: 20 * time.Millisecond},
				HealthAddr:       port,
				Volumes: []agentconfig.Volume{{Name: "secrets", Path: filepath.Join(tmp, "vol"),
					Class: agentconfig.Class{Namespace: "team-a", Name: "app", Provider: "fake"}}},
			}
			enc, _ := cfg.Encode()
			termLog := filepath.Join(tmp, "termination-log")
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), helperEnv+"=run", agentconfig.EnvConfig+"="+enc, "SSI_FAKE_DIR="+src, "SSI_TERMINATION_LOG="+termLog)
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			logsDone := make(chan struct{})
			go func() {
				defer close(logsDone)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					note("%s", sc.Text())
					t.Log(sc.Text())
				}
			}()
			h := &harness{t: t, addr: port}
			if tc.backend {
				h.waitReady(10 * time.Second)
				eventually(t, 5*time.Second, "rotating", func() bool {
					return h.metric("ssi_agent_rotations_total", map[string]string{"result": "unchanged"}) >= 3
				})
			} else {
				eventually(t, 10*time.Second, "failing", func() bool {
					return h.metric("ssi_agent_errors_total", map[string]string{"reason": "Unavailable"}) >= 3
				})
			}
			start := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			<-logsDone
			err := cmd.Wait()
			took := time.Since(start)
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("exited %d after %s", code, took)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if took > 2*time.Second {
				t.Errorf("took %s to stop after SIGTERM", took)
			}
			msg, _ := os.ReadFile(termLog)
			note("termination message: %s", msg)
			if tc.wantMsg == "" && len(msg) != 0 {
				t.Errorf("termination message after a clean stop: %q", msg)
			}
			if tc.wantMsg != "" && !strings.Contains(string(msg), tc.wantMsg) {
				t.Errorf("termination message %q, want it to contain %q", msg, tc.wantMsg)
			}
		})
	}
}
