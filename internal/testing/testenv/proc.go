package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// startProc starts cmd as a child (own process group, killed if the test
// binary dies) with stdout and stderr appended to logPath, a log that
// survives it so a failing test can print it.
func startProc(name, logPath string, cmd *exec.Cmd) (*child.Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	p, err := child.Start(name, cmd, func(error) { _ = f.Close() })
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return p, nil
}

// exitErr describes how a process ended; nil means it exited with 0.
func exitErr(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Callers that start a server on it retry when the port was taken since.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns a 127.0.0.1 address ("127.0.0.1:port") whose port was
// free a moment ago, for a server the test starts next.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// waitTCP waits until something accepts connections on addr, the process
// ended, or the timeout passed.
func waitTCP(p *child.Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited before listening on %s: %w", p.Name(), addr, exitErr(err))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after %s: %w", p.Name(), addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// environ is the test process's environment without the variables whose
// names start with one of the prefixes, plus extra KEY=VALUE entries.
func environ(dropPrefixes []string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		drop := false
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Background runs run (a server's Start, a manager, a CLI's main) in a
// goroutine until the test ends or the returned stop is called, which may
// be called more than once: then it calls cancel (which must make run
// return) and fails t unless run returned nil within grace.
func Background(t testing.TB, name string, grace time.Duration, cancel context.CancelFunc, run func() error) (stop func()) {
	done := make(chan error, 1)
	go func() { done <- run() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(grace):
				t.Errorf("%s did not stop within %s", name, grace)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// StartChild starts cmd as a child of the test (own process group, killed
// if the test binary dies) with its output in a log file under t's
// temporary directory, and stops it when the test ends: SIGTERM, then
// SIGKILL after 15 s. A failed test logs the tail of the child's log. The
// benchmarks that measure a shipped binary as its own process use it.
func StartChild(t testing.TB, name string, cmd *exec.Cmd) *child.Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".log")
	p, err := startProc(name, logPath, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, child.LogTail(logPath, 16<<10))
		}
	})
	return p
}
