package atomicdir

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exampleApp is the seed guide's watchdog example, byte for byte.
const exampleApp = "../../test/testdata/seed/example-app.py"

// seedGuides are where the seed guide may be: beside the repository (CI) or
// in the shared folder of a development machine.
var seedGuides = []string{
	"../../../shared/seed/000_0064860e888766f4.txt",
	"/work/shared/seed/000_0064860e888766f4.txt",
}

// TestExampleAppIsTheSeedGuides checks that the copy the next test runs is
// the guide's code block, unchanged.
func TestExampleAppIsTheSeedGuides(t *testing.T) {
	ours, err := os.ReadFile(exampleApp)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range seedGuides {
		guide, err := os.ReadFile(g)
		if err != nil {
			continue
		}
		block := string(guide)
		i := strings.Index(block, "```python\n# example-app.py\n")
		if i < 0 {
			t.Fatalf("%s has no example-app.py block", g)
		}
		block = block[i+len("```python\n"):]
		block = block[:strings.Index(block, "```")]
		if block != string(ours) {
			t.Fatalf("%s differs from the example in %s", exampleApp, g)
		}
		return
	}
	t.Skip("seed guide not present on this machine; the copy is checked where it is")
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
	need := func(ok bool, why string) {
		if ok {
			return
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (.ci/run installs python3-watchdog; the test needs root for unshare -m)", why)
		}
		t.Skip(why)
	}
	need(exec.Command("/usr/bin/python3", "-c", "import watchdog.observers").Run() == nil, "/usr/bin/python3 has no watchdog module: apt-get install python3-watchdog")
	_, err := exec.LookPath("unshare")
	need(err == nil, "unshare (util-linux) not found")
	need(os.Geteuid() == 0, "needs root to create a mount namespace")

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
