package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    procStat
		wantErr bool
	}{
		"plain":            {in: "7 (nginx) S 0 7 7 0 -1 4194560 1 0 0 0 2 1 0 0 20 0 1 0 4711 1000 10 1", want: procStat{state: 'S', ppid: 0, flags: 4194560, start: 4711}},
		"child":            {in: "8 (sh) R 7 7 7 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 4800 1000 10", want: procStat{state: 'R', ppid: 7, flags: 4194304, start: 4800}},
		"name with spaces": {in: "9 (my app) S 0 9 9 0 -1 0 1 0 0 0 0 0 0 0 20 0 1 0 5 1 1", want: procStat{state: 'S', ppid: 0, start: 5}},
		"name with parens": {in: "10 (a) S 3 (b)) Z 0 10 10 0 -1 0 1 0 0 0 0 0 0 0 20 0 1 0 6 1 1", want: procStat{state: 'Z', ppid: 0, start: 6}},
		"kernel thread":    {in: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0", want: procStat{state: 'S', ppid: 0, flags: 2129984, start: 1}},
		"no name":          {in: "11 S 0", wantErr: true},
		"truncated":        {in: "12 (x) S 0", wantErr: true},
		"no start time":    {in: "12 (x) S 0 12 12 0 -1 0 1 0 0 0 0 0 0 0 20 0", wantErr: true},
		"bad ppid":         {in: "13 (x) S x 0 0 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1", wantErr: true},
		"bad start time":   {in: "14 (x) S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 x 1 1", wantErr: true},
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
	const uid = "0f3c9a52-7d1e-4c55-9b1e-2a6f8f0c1d42"
	root := t.TempDir()
	// proc writes one process: its stat line (start is the starttime
	// field) and, unless container is "-", a mountinfo whose termination
	// message mount is that of container in pod podUID.
	proc := func(pid int, name string, state byte, ppid int, flags uint64, start int, podUID, container string) {
		d := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 %d 100 0 0 0 5 3 0 0 20 0 1 0 %d 1000 10\n", pid, name, state, ppid, pid, pid, flags, start)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if container == "-" {
			return
		}
		mi := "1201 1180 0:291 / / rw,relatime - overlay overlay rw\n" +
			"1205 1201 0:295 / /mnt/secrets-store ro,relatime - tmpfs tmpfs rw,size=4096k\n" +
			"1207 1201 8:1 /var/lib/kubelet/pods/" + podUID + "/etc-hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw\n"
		if container != "" {
			mi += "1208 1201 8:1 /var/lib/kubelet/pods/" + podUID + "/containers/" + container + "/4b1c2f3e /dev/termination-log rw,relatime - ext4 /dev/sda1 rw\n"
		}
		if err := os.WriteFile(filepath.Join(d, "mountinfo"), []byte(mi), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc(1, "pause", 'S', 0, 4194560, 100, uid, "")
	proc(2, "kthreadd", 'S', 0, pfKthread|0x40, 1, uid, "-")
	proc(7, "nginx: master", 'S', 0, 4194560, 500, uid, "web")
	proc(8, "nginx: worker", 'S', 7, 4194560, 510, uid, "web")
	proc(9, "ssi-agent", 'S', 0, 4194560, 400, uid, "ssi-agent") // self
	proc(10, "dead (app)", 'Z', 0, 4194560, 450, uid, "old")
	proc(23, "python3", 'R', 0, 4194304, 600, uid, "worker")
	proc(24, "gunicorn", 'S', 23, 4194304, 610, uid, "worker")
	proc(31, "sh", 'S', 0, 4194304, 9000, uid, "web")                     // kubectl exec into web
	proc(35, "envoy", 'S', 0, 4194304, 300, uid, "istio-proxy")           // a mesh sidecar
	proc(41, "cat", 'S', 0, 4194304, 700, "00000000-other-pod", "victim") // another pod's directory (hostPath)
	proc(42, "bash", 'S', 0, 4194304, 800, uid, "-")                      // mountinfo unreadable
	proc(43, "my app", 'S', 0, 4194304, 900, uid, `we\134b`)              // an escaped character in the path
	_ = os.MkdirAll(filepath.Join(root, "30"), 0o755)                     // exited: no stat
	_ = os.MkdirAll(filepath.Join(root, "net"), 0o755)
	_ = os.Symlink("9", filepath.Join(root, "self"))

	tests := map[string]struct {
		podUID string
		want   []Process
	}{
		"pod UID known":   {podUID: uid, want: []Process{{PID: 7, Container: "web"}, {PID: 23, Container: "worker"}, {PID: 35, Container: "istio-proxy"}, {PID: 41}, {PID: 42}, {PID: 43, Container: `we\b`}}},
		"pod UID unknown": {want: []Process{{PID: 7, Container: "web"}, {PID: 23, Container: "worker"}, {PID: 35, Container: "istio-proxy"}, {PID: 41, Container: "victim"}, {PID: 42}, {PID: 43, Container: `we\b`}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ProcScanner{Root: root, Self: 9, PodUID: tc.podUID}.MainProcesses()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("MainProcesses =\n%v, want\n%v", got, tc.want)
			}
		})
	}
}

func TestContainerOf(t *testing.T) {
	const uid = "u-1"
	tests := map[string]struct {
		mountinfo string
		want      string
	}{
		"kubelet root on the root filesystem": {mountinfo: "1 0 8:1 /var/lib/kubelet/pods/u-1/containers/web/0a1b /dev/termination-log rw - ext4 /dev/sda1 rw", want: "web"},
		"kubelet root is its own filesystem":  {mountinfo: "1 0 8:2 /pods/u-1/containers/web/0a1b /dev/termination-log rw - xfs /dev/sdb rw", want: "web"},
		"custom terminationMessagePath":       {mountinfo: "1 0 8:1 /data/kubelet/pods/u-1/containers/api/ff /tmp/why rw - ext4 /dev/sda1 rw", want: "api"},
		"escaped characters in the prefix":    {mountinfo: `1 0 8:1 /my\040disk/pods/u-1/containers/web/0a1b /dev/termination-log rw - ext4 /dev/sda1 rw`, want: "web"},
		"another pod":                         {mountinfo: "1 0 8:1 /var/lib/kubelet/pods/u-2/containers/web/0a1b /dev/termination-log rw - ext4 /dev/sda1 rw"},
		"a volume, not a container directory": {mountinfo: "1 0 0:5 /var/lib/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/containers /mnt rw - tmpfs tmpfs rw"},
		"the container directory itself":      {mountinfo: "1 0 8:1 /var/lib/kubelet/pods/u-1/containers/web /x rw - ext4 /dev/sda1 rw"},
		"no termination message mount":        {mountinfo: "1 0 0:291 / / rw - overlay overlay rw\n2 1 0:5 / /mnt/secrets-store ro - tmpfs tmpfs rw"},
		"two containers":                      {mountinfo: "1 0 8:1 /var/lib/kubelet/pods/u-1/containers/web/0a /a rw - ext4 /dev/sda1 rw\n2 0 8:1 /var/lib/kubelet/pods/u-1/containers/api/0b /b rw - ext4 /dev/sda1 rw"},
		"short lines":                         {mountinfo: "\n1 0\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := containerOf([]byte(tc.mountinfo), uid); got != tc.want {
				t.Errorf("containerOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChooseTargets(t *testing.T) {
	procs := []Process{{PID: 7, Container: "web"}, {PID: 23, Container: "worker"}, {PID: 35, Container: "istio-proxy"}, {PID: 42}}
	tests := map[string]struct {
		targets     []string
		want        []Process
		wantMissing []string
	}{
		"listed containers only":   {targets: []string{"worker", "web"}, want: []Process{{PID: 23, Container: "worker"}, {PID: 7, Container: "web"}}},
		"a listed one not running": {targets: []string{"web", "batch"}, want: []Process{{PID: 7, Container: "web"}}, wantMissing: []string{"batch"}},
		"unnamed processes never":  {targets: []string{""}, wantMissing: []string{""}},
		"previous configuration":   {targets: nil, want: procs},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, missing := chooseTargets(procs, tc.targets)
			if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(missing, tc.wantMissing) {
				t.Errorf("chooseTargets = %v, missing %v; want %v, missing %v", got, missing, tc.want, tc.wantMissing)
			}
		})
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
// parent PID reads 0 inside), in a mount namespace of its own with the
// termination message mount kubelet gives every container: the file
// <kubelet root>/pods/<pod UID>/containers/<name>/<id> bound onto the
// container's termination message path. Every container runs as one
// non-root user without capabilities, as with a pod-level runAsUser under
// the restricted Pod Security profile.
type pod struct {
	t     *testing.T
	uid   string // the pod's UID
	user  int    // the containers' user and group
	dir   string // the fake kubelet root and the containers' mount points
	pause int    // host PID of the namespace's PID 1
	procs []*exec.Cmd
	// out holds each container's stderr (also checked by suiteLogs for
	// secret values); a failed test logs it.
	out map[string]*lockedBuffer
}

// lockedBuffer is a bytes.Buffer written by a process's output copier
// and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// podUser is the user the pod's containers run as.
const podUser = 1000

// needNamespaces stops the test unless the machine can build a pod: under
// -short it skips; a missing capability skips, or fails under CI.
func needNamespaces(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("creates PID and mount namespaces; skipped with -short")
	}
	testenv.RequireCapability(t, "root", testenv.AsRoot())
	for _, b := range []string{"unshare", "nsenter", "mount", "setpriv"} {
		_, err := exec.LookPath(b)
		testenv.RequireCapability(t, "util-linux "+b, err)
	}
	if out, err := exec.Command("env", "--default-signal=HUP", "true").CombinedOutput(); err != nil {
		testenv.RequireCapability(t, "coreutils env --default-signal", fmt.Errorf("%w: %s", err, bytes.TrimSpace(out)))
	}
	out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--mount", "true").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("unshare --pid --fork --mount-proc --mount true: %w: %s", err, bytes.TrimSpace(out))
	}
	testenv.RequireCapability(t, "PID and mount namespaces", err)
}

func newPod(t *testing.T) *pod {
	t.Helper()
	p := &pod{t: t, uid: "6b0e3c1a-2f4d-4e8a-9c7b-5d1f0a2e3b4c", user: podUser, dir: t.TempDir(), out: map[string]*lockedBuffer{}}
	pause := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sleep", "3600")
	pause.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pause.Start(); err != nil {
		t.Fatal(err)
	}
	p.procs = append(p.procs, pause)
	t.Cleanup(p.stop)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for name, b := range p.out {
			if s := b.String(); s != "" {
				t.Logf("stderr of container %s:\n%s", name, s)
			}
		}
	})
	p.pause = p.hostChild(pause, "pause")
	return p
}

// hostChild returns the host PID of the process cmd (unshare or nsenter)
// forked into the PID namespace.
func (p *pod) hostChild(cmd *exec.Cmd, what string) int {
	p.t.Helper()
	var pid int
	eventually(p.t, 5*time.Second, what+" started", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if err != nil || len(strings.Fields(string(b))) == 0 {
			return false
		}
		pid, _ = strconv.Atoi(strings.Fields(string(b))[0])
		return pid > 0
	})
	return pid
}

// unprivileged is the command prefix that drops to the pod's user with no
// capabilities, as the runtime starts a restricted container's process.
func (p *pod) unprivileged() []string {
	id := strconv.Itoa(p.user)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"}
}

// enter starts argv as the main process of a new container name in the
// pod, and returns its host PID.
func (p *pod) enter(name string, env []string, argv ...string) int {
	p.t.Helper()
	src := filepath.Join(p.dir, "kubelet", "pods", p.uid, "containers", name, fmt.Sprintf("%08x", len(p.procs)))
	dst := filepath.Join(p.dir, "rootfs", name, "dev", "termination-log")
	for _, f := range []string{src, dst} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	args := []string{"-t", strconv.Itoa(p.pause), "-p", "-m", "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "container-init", src, dst}
	args = append(append(args, p.unprivileged()...), argv...)
	return p.start(exec.Command("nsenter", args...), env, name)
}

// exec starts argv in the namespaces of the process hostPID, as `kubectl
// exec` does: its parent PID reads 0 too, and it has the container's mounts.
func (p *pod) exec(hostPID int, argv ...string) int {
	p.t.Helper()
	args := append([]string{"-t", strconv.Itoa(hostPID), "-p", "-m", "--"}, p.unprivileged()...)
	return p.start(exec.Command("nsenter", append(args, argv...)...), nil, "exec session")
}

func (p *pod) start(cmd *exec.Cmd, env []string, what string) int {
	p.t.Helper()
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.out[what] == nil {
		p.out[what] = &lockedBuffer{}
	}
	cmd.Stderr = multiWriter{suiteLogs, p.out[what]}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.procs = append(p.procs, cmd)
	return p.hostChild(cmd, what)
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
// two app containers it must signal, a mesh sidecar it must not, and a
// `kubectl exec` session in one of the apps, which must not be signalled
// either. All run as one non-root user without capabilities, as in a
// restricted pod, so the kernel would let the agent signal any of them. It
// checks that the /proc scan, unprivileged, tells each container's main
// process, that a changing rotation signals exactly the listed containers
// once, and that unchanged rotations signal nobody.
func TestReloadSignalRealNamespace(t *testing.T) {
	needNamespaces(t)
	p := newPod(t)
	tmp := sharedDir(t, p.user)
	self := reachableExecutable(t, tmp)
	// app starts a process that logs SIGHUP to its log file, and returns
	// the file, its PID in the pod and its host PID.
	app := func(name string, start func(argv ...string) int) (string, string, int) {
		out := filepath.Join(tmp, name+".log")
		// The shell traps SIGHUP; its sleep children must not be
		// signalled (they would die of it and the loop would log that).
		script := `trap 'echo reload >> "$0"' HUP; echo "started $$" >> "$0"; while :; do sleep 0.05 || echo child-killed >> "$0"; done`
		// env --default-signal: a shell started with SIGHUP ignored (the
		// test run under nohup, which children inherit) cannot trap it,
		// so the app would never log a reload and the mesh and exec
		// session would pass for unsignalled whatever the agent did.
		host := start("env", "--default-signal=HUP", "/bin/sh", "-c", script, out)
		var pid string
		eventually(t, 5*time.Second, name+" started", func() bool {
			b, _ := os.ReadFile(out)
			_, after, ok := strings.Cut(string(b), "started ")
			pid = strings.TrimSpace(after)
			return ok && pid != ""
		})
		return out, pid, host
	}
	container := func(name string) func(argv ...string) int {
		return func(argv ...string) int { return p.enter(name, nil, argv...) }
	}
	web, webPID, webHost := app("web", container("web"))
	worker, workerPID, _ := app("worker", container("worker"))
	mesh, meshPID, _ := app("istio-proxy", container("istio-proxy"))
	session, _, _ := app("exec-session", func(argv ...string) int { return p.exec(webHost, argv...) })

	// What the scanner sees from inside the pod.
	list := exec.Command("nsenter", append(append([]string{"-t", strconv.Itoa(p.pause), "-p", "-m", "--"}, p.unprivileged()...), self)...)
	list.Env = append(os.Environ(), helperEnv+"=list", agentconfig.EnvPodUID+"="+p.uid)
	out, err := list.Output()
	if err != nil {
		t.Fatalf("list helper: %v", err)
	}
	// Not PID 1 (pause), not the apps' children, not the exec session, not
	// the lister itself.
	want := webPID + ":web " + workerPID + ":worker " + meshPID + ":istio-proxy"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("main processes seen in the pod = %q, want %q", got, want)
	}

	src := filepath.Join(tmp, "backend")
	staging := filepath.Join(tmp, "staging")
	for _, d := range []string{src, staging} {
		if err := os.Mkdir(d, 0o755); err != nil {
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
		ReloadContainers: []string{"web", "worker"},
		HealthAddr:       port,
		Volumes: []agentconfig.Volume{{Name: "secrets", Path: vol,
			Class: agentconfig.Class{Namespace: "team-a", Name: "app", Provider: "fake"}}},
	}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	agentHost := p.enter("ssi-agent", []string{helperEnv + "=run", agentconfig.EnvConfig + "=" + enc, agentconfig.EnvPodUID + "=" + p.uid, "SSI_FAKE_DIR=" + src, "SSI_TERMINATION_LOG=-"}, self)
	h := &harness{t: t, addr: port}
	h.waitReady(10 * time.Second)
	for what, pid := range map[string]int{"agent": agentHost, "web": webHost} {
		if got := credentials(t, pid); got != fmt.Sprintf("uid %d, no effective capabilities", podUser) {
			t.Fatalf("%s runs with %s, want uid %d and no capabilities", what, got, podUser)
		}
	}
	rotations := func(result string) float64 {
		return h.metric("ssi_agent_rotations_total", map[string]string{"result": result})
	}
	reloads := func(f string) string {
		b, _ := os.ReadFile(f)
		return string(b)
	}
	// Several unchanged rotations: no signal.
	eventually(t, 30*time.Second, "unchanged rotations", func() bool { return rotations("unchanged") >= 3 })
	for _, f := range []string{web, worker, mesh, session} {
		if b := reloads(f); strings.Contains(b, "reload") {
			t.Fatalf("%s reloaded before anything changed: %q", filepath.Base(f), b)
		}
	}
	write("conf-value-0002")
	// The waits end as soon as the condition holds; their limits only
	// bound a stuck run on a machine busy with other test packages.
	// A failure says how far the agent got (registered after newPod's
	// cleanup, so it runs while the agent still answers).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rotations changed %v unchanged %v error %v, reload signals sent %v error %v; web.log %q, worker.log %q",
				rotations("changed"), rotations("unchanged"), rotations("error"),
				h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "sent"}),
				h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "error"}),
				reloads(web), reloads(worker))
		}
	})
	for _, f := range []string{web, worker} {
		eventually(t, 30*time.Second, "reload of "+filepath.Base(f), func() bool { return strings.Contains(reloads(f), "reload") })
	}
	if got := readFile(t, filepath.Join(vol, "app.conf")); got != "conf-value-0002" {
		t.Errorf("app.conf = %q", got)
	}
	// A few more rotations: a second change, or a late signal, shows now.
	unchanged := rotations("unchanged")
	eventually(t, 30*time.Second, "unchanged rotations after the change", func() bool { return rotations("unchanged") >= unchanged+3 })
	if n := rotations("changed"); n != 1 {
		t.Errorf("%v changing rotations after one change of the backend, want 1", n)
	}
	if n := h.metric("ssi_agent_reload_signals_total", map[string]string{"result": "sent"}); n != 2 {
		t.Errorf("reload_signals_total{sent} = %v, want 2 (web and worker)", n)
	}
	for _, f := range []string{web, worker} {
		if b := reloads(f); strings.Count(b, "reload") != 1 || strings.Contains(b, "child-killed") {
			t.Errorf("%s: %q, want exactly one reload and no signalled children", filepath.Base(f), b)
		}
	}
	for _, f := range []string{mesh, session} {
		if b := reloads(f); strings.Contains(b, "reload") {
			t.Errorf("%s was signalled: %q", filepath.Base(f), b)
		}
	}
}

// credentials describes the real user and effective capabilities of a
// host process, from /proc/PID/status.
func credentials(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var uid, caps string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps = strings.TrimSpace(v)
		}
	}
	if strings.Trim(caps, "0") == "" {
		return "uid " + uid + ", no effective capabilities"
	}
	return "uid " + uid + ", capabilities " + caps
}

// sharedDir is a temporary directory the pod's user can write and every
// user can reach (t.TempDir's directories are root's, mode 0700).
func sharedDir(t *testing.T, user int) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, user, user); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reachableExecutable is this test binary at a path the pod's user can
// execute (go test builds it in a directory only root can enter): a hard
// link in dir, or a copy where dir is on another filesystem.
func reachableExecutable(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, filepath.Base(self))
	if err := os.Link(self, exe); err == nil {
		return exe
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
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
