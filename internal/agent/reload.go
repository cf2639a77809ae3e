package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ssinjector/ssi/internal/mountinfo"
)

// Process is a container's main process in the pod's shared PID namespace.
type Process struct {
	// PID is the process ID in the pod's PID namespace.
	PID int
	// Container is the name of the container the process is the main
	// process of, or "" when the scan cannot tell.
	Container string
}

// Processes finds and signals the containers' main processes.
type Processes interface {
	// MainProcesses returns the containers' main processes, at most one
	// per named container.
	MainProcesses() ([]Process, error)
	// Signal sends sig to pid.
	Signal(pid int, sig syscall.Signal) error
}

// ProcScanner finds main processes in the pod's shared PID namespace (the
// webhook sets shareProcessNamespace when reload-signal is used). There,
// every container's main process was started from outside the namespace by
// the container runtime, so its parent PID reads 0. PID 1 is the pause
// process, and the agent itself is excluded, as are kernel threads, zombies
// and the agent's own container's processes.
//
// A process's container is told by the mount kubelet gives every container
// for its termination message: a bind mount of the file
// <kubelet root>/pods/<pod UID>/containers/<container name>/<random id>,
// which /proc/PID/mountinfo (readable without any privilege) shows as the
// mount's root. Processes that `kubectl exec` starts also have parent PID 0
// and the same mounts; the container's main process is the oldest of them.
type ProcScanner struct {
	// Root is the proc filesystem; empty means /proc.
	Root string
	// Self is the agent's PID; zero means os.Getpid().
	Self int
	// PodUID, when set, is the only pod whose container directories count
	// (a hostPath volume may show another pod's).
	PodUID string
}

// pfKthread is the kernel-thread bit of the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// MainProcesses implements Processes. The result is sorted by PID.
func (s ProcScanner) MainProcesses() ([]Process, error) {
	root := s.Root
	if root == "" {
		root = "/proc"
	}
	self := s.Self
	if self == 0 {
		self = os.Getpid()
	}
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", root, err)
	}
	type candidate struct {
		Process
		start uint64
	}
	var all []candidate
	oldest := map[string]int{} // container -> index in all of its oldest process
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid <= 1 || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, de.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseStat(b)
		if err != nil {
			return nil, fmt.Errorf("%s/%d/stat: %w", root, pid, err)
		}
		if st.ppid != 0 || st.flags&pfKthread != 0 || st.state == 'Z' || st.state == 'X' {
			continue
		}
		c := candidate{Process: Process{PID: pid}, start: st.start}
		if mi, err := os.ReadFile(filepath.Join(root, de.Name(), "mountinfo")); err == nil {
			c.Container = containerOf(mi, s.PodUID)
		}
		if c.Container != "" {
			if i, ok := oldest[c.Container]; ok {
				if prev := all[i]; prev.start < c.start || (prev.start == c.start && prev.PID < c.PID) {
					continue
				}
				all[i] = c
				continue
			}
			oldest[c.Container] = len(all)
		}
		all = append(all, c)
	}
	out := make([]Process, 0, len(all))
	for _, c := range all {
		out = append(out, c.Process)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// containerOf returns the container name in the root of the termination
// message mount of a mountinfo listing, "" when there is none or the
// listing names two containers.
func containerOf(table []byte, podUID string) string {
	found := ""
	for _, line := range strings.Split(string(table), "\n") {
		// ID parentID major:minor root mountPoint ...
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := strings.Split(mountinfo.Unescape(f[3]), "/")
		n := len(p)
		if n < 5 || p[n-5] != "pods" || p[n-3] != "containers" || p[n-4] == "" || p[n-2] == "" || p[n-1] == "" {
			continue
		}
		if podUID != "" && p[n-4] != podUID {
			continue
		}
		switch name := p[n-2]; {
		case found == "":
			found = name
		case found != name:
			return ""
		}
	}
	return found
}

// Signal implements Processes.
func (ProcScanner) Signal(pid int, sig syscall.Signal) error {
	return syscall.Kill(pid, sig)
}

type procStat struct {
	state byte
	ppid  int
	flags uint64
	// start is the start time in clock ticks after boot.
	start uint64
}

// parseStat reads the fields of /proc/PID/stat the scanner needs. The
// command name is in parentheses and may itself contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid(4) pgrp(5) session(6) tty_nr(7)
	// tpgid(8) flags(9) ... starttime(22).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("truncated")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("ppid %q: %w", f[1], err)
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("flags %q: %w", f[6], err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("starttime %q: %w", f[19], err)
	}
	return procStat{state: f[0][0], ppid: ppid, flags: flags, start: start}, nil
}

// ParseSignal accepts a signal name with or without the SIG prefix, in any
// case ("SIGHUP", "hup"), or its number.
func ParseSignal(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(name); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal number %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		return 0, fmt.Errorf("%s cannot be used as a reload signal", name)
	}
	return sig, nil
}

// reloader signals the app containers after a rotation changed files.
type reloader struct {
	procs Processes
	sig   syscall.Signal
	// targets are the containers to signal; nil (a configuration written
	// before reloadContainers existed) signals every main process.
	targets []string
	log     *slog.Logger
	mu      sync.Mutex
}

// chooseTargets picks the processes of the target containers from the
// main processes, and names the targets that have none (not started, or
// between restarts). Nil targets choose every process.
func chooseTargets(procs []Process, targets []string) (chosen []Process, missing []string) {
	if targets == nil {
		return procs, nil
	}
	byName := map[string]Process{}
	for _, p := range procs {
		if p.Container != "" {
			byName[p.Container] = p
		}
	}
	for _, t := range targets {
		p, ok := byName[t]
		if !ok {
			missing = append(missing, t)
			continue
		}
		chosen = append(chosen, p)
	}
	return chosen, missing
}

func (r *reloader) signal(m *metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := unix.SignalName(r.sig)
	procs, err := r.procs.MainProcesses()
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
		r.log.Warn("cannot list app processes for the reload signal", "signal", name, "error", err.Error())
		return
	}
	chosen, missing := chooseTargets(procs, r.targets)
	for _, c := range missing {
		m.reloads.WithLabelValues("error").Inc()
		r.log.Warn("no main process of the container to signal: not running, or not told apart by its termination message mount", "signal", name, "container", c)
	}
	if len(chosen) == 0 && len(missing) == 0 {
		m.reloads.WithLabelValues("error").Inc()
		r.log.Warn("no app container process to signal; does the pod share its process namespace?", "signal", name)
		return
	}
	for _, p := range chosen {
		if err := r.procs.Signal(p.PID, r.sig); err != nil {
			m.reloads.WithLabelValues("error").Inc()
			r.log.Warn("reload signal failed", "signal", name, "pid", p.PID, "container", p.Container, "error", err.Error())
			continue
		}
		m.reloads.WithLabelValues("sent").Inc()
		r.log.Info("reload signal sent", "signal", name, "pid", p.PID, "container", p.Container)
	}
}
