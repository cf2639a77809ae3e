package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// MotoServerPath locates moto_server: $MOTO_SERVER, then the pyenv
// installation of Python 3.11 this machine provides, then PATH.
func MotoServerPath() (string, error) {
	if p := os.Getenv("MOTO_SERVER"); p != "" {
		return p, nil
	}
	var tried []string
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		if home, err := os.UserHomeDir(); err == nil {
			root = filepath.Join(home, ".pyenv")
		}
	}
	if root != "" {
		pattern := filepath.Join(root, "versions", "3.11*", "bin", "moto_server")
		matches, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(sort.StringSlice(matches)))
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode()&0o111 != 0 { //nolint:gosec // a path this function globbed, checked only for being executable
				return m, nil
			}
		}
		tried = append(tried, pattern)
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	tried = append(tried, "moto_server on PATH")
	return "", fmt.Errorf("moto_server not found (tried $MOTO_SERVER, %s); install it with `pip install 'moto[server]==5.2.1'` or set MOTO_SERVER", strings.Join(tried, ", "))
}

// StartMoto runs moto_server (the AWS emulator) on a free loopback port,
// stops it by process group when the test ends, and returns its URL.
func StartMoto(t testing.TB) string {
	t.Helper()
	SkipIfShort(t)
	bin, err := MotoServerPath()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "moto.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)) //nolint:gosec // the moto_server found above
		cmd.Env = append(os.Environ(), "PYENV_VERSION=3.11")
		p, err := startProc("moto_server", logPath, cmd)
		if err != nil {
			t.Fatal(err)
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		if lastErr = waitMoto(p, base, 60*time.Second); lastErr == nil {
			t.Cleanup(func() {
				if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
					t.Errorf("stop moto_server: %v", err)
				}
			})
			t.Logf("moto_server %s (pid %d) at %s", bin, p.Pid(), base)
			return base
		}
		_ = p.Stop(syscall.SIGTERM, 10*time.Second)
	}
	t.Fatalf("moto_server: %v\nlog:\n%s", lastErr, child.LogTail(logPath, 40))
	return ""
}

// waitMoto waits until moto's management API answers.
func waitMoto(p *child.Process, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := http.Client{Timeout: 2 * time.Second}
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("moto_server (pid %d) exited before serving: %w", p.Pid(), exitErr(err))
		}
		if resp, err := c.Get(base + "/moto-api/"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moto_server (pid %d) did not serve at %s within %s", p.Pid(), base, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
