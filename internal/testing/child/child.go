// Package child runs the helper processes that the tests, `make demo` and
// the end-to-end cluster start (Vault, moto, Postgres, etcd, the control
// plane, the kubelet, the product's own binaries) and stops exactly those.
//
// Each child gets a process group of its own, so a terminal's ^C reaches
// only the parent, which then stops its children in order, and so Stop
// also reaches what a child started in its group. A child is killed by the
// kernel when the parent dies without stopping it (Pdeathsig), e.g. on go
// test's timeout.
package child

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Process is a started child.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, written before done is closed
}

// Start starts cmd as a child named name (for messages). The caller sets
// its output, environment and directory; the SysProcAttr fields it set are
// kept. onExit, unless nil, runs with Wait's result once the child has
// ended, before Exited reports that (e.g. to close its log file).
func Start(name string, cmd *exec.Cmd, onExit func(error)) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if onExit != nil {
			onExit(err)
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// Name is the name given to Start.
func (p *Process) Name() string { return p.name }

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has ended, with Wait's result (nil for
// exit status 0).
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends sig to the child's process group, waits up to grace for the
// child to end, then kills the group. Stopping an ended child is a no-op.
// The error says when the child had to be killed.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	pid := p.Pid()
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) did not stop within %s after %s; killed", p.name, pid, grace, sig)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, pid)
	}
}
