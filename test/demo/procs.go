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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssinjector/ssi/internal/testing/child"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// start runs a child (see package child: own process group, so Ctrl-C
// reaches only the demo, which then stops the children in order; killed if
// the demo dies) with env as its whole environment and its output to out.
func start(name string, out io.Writer, env []string, bin string, args ...string) (*child.Process, error) {
	cmd := exec.Command(bin, args...) //nolint:gosec // the demo runs the binaries it was given
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	return child.Start(name, cmd, nil)
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

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// waitHTTP polls url until it answers 200, ctx ends or p exits.
func waitHTTP(ctx context.Context, client *http.Client, url string, p *child.Process, timeout time.Duration) error {
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
		if p != nil {
			if done, err := p.Exited(); done {
				return fmt.Errorf("%s exited (%w) before %s answered", p.Name(), err, url)
			}
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
