package atomicdir

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exampleApp is the seed guide's watchdog example, byte for byte: the copy
// in the repository's seed directory, so that the test runs from a clean
// clone.
const exampleApp = "../../test/testdata/seed/example-app.py"

// exampleAppSHA256 is the SHA-256 of the guide's example-app.py code block
// (the text between "```python\n" and the closing fence), recorded from the
// guide when the copy was made. To check it against a copy of the guide:
//
//	awk '/^```python$/{f=1;next} /^```$/{f=0} f' GUIDE | sha256sum
const exampleAppSHA256 = "b2f0376bdc4f7b198cd1b1c9e88a7062fc2f14479625270a07b1b7df32323d34"

// TestExampleAppIsTheSeedGuides checks that the copy the next test runs is
// the guide's code block, unchanged.
func TestExampleAppIsTheSeedGuides(t *testing.T) {
	ours, err := os.ReadFile(exampleApp)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(ours)); got != exampleAppSHA256 {
		t.Fatalf("%s has SHA-256 %s, the seed guide's example-app.py block %s: the copy was edited", exampleApp, got, exampleAppSHA256)
	}
}

// TestWatchdogExampleReloads runs the seed guide's Python watchdog example
// unchanged (Debian's python3-watchdog) against a volume written by this
// package. The example hardcodes /mnt/secrets, so it runs in a private mount
// namespace where the test directory is bind-mounted there. After a
// rotation that changes db-password it must print its reload line and load
// the new value.
func TestWatchdogExampleReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3 in a mount namespace; skipped with -short")
	}
	requireCapability(t, "Python watchdog module", pythonWatchdog())
	_, err := exec.LookPath("unshare")
	requireCapability(t, "unshare", wrapMissing(err, "unshare (util-linux) creates the mount namespace: apt-get install util-linux"))
	requireCapability(t, "mount namespaces", mountNamespace())

	dir := t.TempDir()
	mustWrite(t, dir,
		File{Path: "db-password", Data: []byte("old-password-1\n")},
		File{Path: "api-token", Data: []byte("token-1\n")},
	)
	script, _ := filepath.Abs(exampleApp)
	wrapper, _ := filepath.Abs("testdata/run_example_app.py")
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-ec",
		`mount -t tmpfs ssi-test /mnt; mkdir /mnt/secrets; mount --bind "$1" /mnt/secrets; exec /usr/bin/python3 -u "$2" "$3"`,
		"sh", dir, wrapper, script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &prefixWriter{t: t, prefix: "example-app stderr: "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string, timeout time.Duration) {
		t.Helper()
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("example app exited before printing %q", want)
				}
				t.Logf("example app: %s", l)
				if l == want {
					return
				}
				if strings.HasPrefix(l, "connect_to_db") {
					t.Fatalf("unexpected reload %q while waiting for %q", l, want)
				}
			case <-deadline:
				t.Fatalf("example app did not print %q within %s", want, timeout)
			}
		}
	}
	expect("wrapper: observer started", 30*time.Second)

	// A rotation that leaves db-password alone must not reload it.
	mustWrite(t, dir,
		File{Path: "db-password", Data: []byte("old-password-1\n")},
		File{Path: "api-token", Data: []byte("token-2\n")},
	)
	// A rotation of db-password must.
	mustWrite(t, dir,
		File{Path: "db-password", Data: []byte("new-password-2\n")},
		File{Path: "api-token", Data: []byte("token-2\n")},
	)
	expect("Database password changed, reloading...", 10*time.Second)
	expect("connect_to_db password=new-password-2", 5*time.Second)
}

// pythonWatchdog is nil when /usr/bin/python3 can import watchdog, as the
// example needs.
func pythonWatchdog() error {
	if out, err := exec.Command("/usr/bin/python3", "-c", "import watchdog.observers").CombinedOutput(); err != nil {
		return fmt.Errorf("/usr/bin/python3 cannot import watchdog (apt-get install python3-watchdog): %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountNamespace is nil when a private mount namespace with a tmpfs on
// /mnt can be made here, as the test does.
func mountNamespace() error {
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-ec", "mount -t tmpfs ssi-probe /mnt").CombinedOutput()
	if err != nil {
		return fmt.Errorf("unshare -m and mount -t tmpfs: %w: %s (needs root with CAP_SYS_ADMIN, e.g. not in an unprivileged container)", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// wrapMissing puts why in front of err, keeping nil nil.
func wrapMissing(err error, why string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", why, err)
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}
