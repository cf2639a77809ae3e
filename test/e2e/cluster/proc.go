package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// procs tracks the processes the harness started (see package child). Each
// one's pid and executable are appended to the work directory's pid file,
// so that the cleanup of a later run can stop it (by pid, after checking
// the executable) if this run crashed.
type procs struct {
	mu      sync.Mutex
	pidFile string
	logDir  string
	list    []*child.Process
}

// start runs bin with args, its output in <logDir>/<name>.log.
func (ps *procs) start(name, bin string, args []string, env []string) (*child.Process, error) {
	lf, err := os.OpenFile(filepath.Join(ps.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	_, _ = fmt.Fprintf(lf, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...) //nolint:gosec // the components the harness runs
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	p, err := child.Start(name, cmd, func(err error) {
		_, _ = fmt.Fprintf(lf, "# exited: %v\n", err)
		_ = lf.Close()
	})
	if err != nil {
		_ = lf.Close()
		return nil, err
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	f, err := os.OpenFile(ps.pidFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		exe, _ := filepath.Abs(bin)
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		_, _ = fmt.Fprintf(f, "%d\t%s\t%s\n", p.Pid(), exe, name)
		_ = f.Close()
	}
	ps.mu.Unlock()
	return p, nil
}

// get returns the process named name.
func (ps *procs) get(name string) *child.Process {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// stopAll stops the processes in reverse start order.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*child.Process(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		_ = list[i].Stop(syscall.SIGTERM, 15*time.Second)
	}
}

// killRecorded stops processes listed in a pid file by an earlier run,
// only when the pid still runs the recorded executable.
func killRecorded(pidFile string, logf func(string, ...any)) error {
	f, err := os.Open(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) < 2 {
			continue
		}
		pid, err := strconv.Atoi(parts[0])
		if err != nil || pid <= 1 {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != parts[1] {
			continue
		}
		logf("stopping leftover %s (pid %d)", parts[len(parts)-1], pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		pids = append(pids, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndex(s, ")"); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// processesWithArg returns pids whose command line contains arg (used to
// find the containerd shims of this harness's containerd, which reparent
// themselves and so are not the harness's children).
func processesWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
