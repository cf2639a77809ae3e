package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child the demo started and must stop.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs a child in its own process group (so Ctrl-C reaches only the
// demo, which then stops the children in order) that is killed if the
// demo dies.
func start(name string, out io.Writer, env []string, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...) //nolint:gosec // the demo runs the binaries it was given
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *process) Pid() int { return p.cmd.Process.Pid }

// exited reports whether the child has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after the grace period, and waits.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) did not stop within %s and was killed", p.name, p.Pid(), grace)
}

// cleanups run in reverse order, once.
type cleanups struct {
	mu  sync.Mutex
	fns []func() error
}

func (c *cleanups) add(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanups) run() error {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// freeAddr returns a free 127.0.0.1 address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// waitHTTP polls url until it answers 200, ctx ends or p exits.
func waitHTTP(ctx context.Context, client *http.Client, url string, p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%w) before %s answered", p.name, p.err, url)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %w)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// environ is os.Environ without variables that would send the children
// elsewhere than this demo's servers.
func environ(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "KUBECONFIG", "VAULT_ADDR", "VAULT_TOKEN", "VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy":
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}
