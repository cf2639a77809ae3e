package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Processes finds and signals the app containers' main processes.
type Processes interface {
	// MainProcesses returns the PIDs to signal after a changing rotation.
	MainProcesses() ([]int, error)
	// Signal sends sig to pid.
	Signal(pid int, sig syscall.Signal) error
}

// ProcScanner finds main processes in the pod's shared PID namespace (the
// webhook sets shareProcessNamespace when reload-signal is used). There,
// every container's main process was started from outside the namespace by
// the container runtime, so its parent PID reads 0. PID 1 is the pause
// process, and the agent itself is excluded, as are kernel threads, zombies
// and the agent's own container's processes.
type ProcScanner struct {
	// Root is the proc filesystem; empty means /proc.
	Root string
	// Self is the agent's PID; zero means os.Getpid().
	Self int
}

// pfKthread is the kernel-thread bit of the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// MainProcesses implements Processes.
func (s ProcScanner) MainProcesses() ([]int, error) {
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
	var out []int
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
		out = append(out, pid)
	}
	return out, nil
}

// Signal implements Processes.
func (ProcScanner) Signal(pid int, sig syscall.Signal) error {
	return syscall.Kill(pid, sig)
}

type procStat struct {
	state byte
	ppid  int
	flags uint64
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
	// tpgid(8) flags(9).
	if len(f) < 7 || len(f[0]) != 1 {
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
	return procStat{state: f[0][0], ppid: ppid, flags: flags}, nil
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
	log   *slog.Logger
	mu    sync.Mutex
}

func (r *reloader) signal(m *metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := unix.SignalName(r.sig)
	pids, err := r.procs.MainProcesses()
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
		r.log.Warn("cannot list app processes for the reload signal", "signal", name, "error", err.Error())
		return
	}
	if len(pids) == 0 {
		m.reloads.WithLabelValues("error").Inc()
		r.log.Warn("no app container process to signal; does the pod share its process namespace?", "signal", name)
		return
	}
	for _, pid := range pids {
		if err := r.procs.Signal(pid, r.sig); err != nil {
			m.reloads.WithLabelValues("error").Inc()
			r.log.Warn("reload signal failed", "signal", name, "pid", pid, "error", err.Error())
			continue
		}
		m.reloads.WithLabelValues("sent").Inc()
		r.log.Info("reload signal sent", "signal", name, "pid", pid)
	}
}
