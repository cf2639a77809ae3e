package atomicdir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// unprivilegedEnv, set in the environment of this test binary, makes it a
// child that writes the files on its stdin into the directory named by the
// variable and reports the outcome on stdout, instead of running tests; see
// writeUnprivileged.
const unprivilegedEnv = "SSI_ATOMICDIR_UNPRIVILEGED_WRITE_DIR"

// nobodyID is the uid and gid the child runs as (nobody/nogroup on Debian;
// it need not exist in /etc/passwd).
const nobodyID = 65534

// TestMain runs the unprivileged-write child when this binary is one, and
// the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(unprivilegedEnv); dir != "" {
		os.Exit(unprivilegedChild(dir, os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// childReport is what the child prints: whether it could read the
// directory at all (so that a path it cannot reach is not mistaken for the
// permission error under test), and what Write returned.
type childReport struct {
	UID     int
	ReadErr string
	Swapped bool
	Err     string
}

func unprivilegedChild(dir string, in io.Reader, out io.Writer) int {
	var files []File
	if err := json.NewDecoder(in).Decode(&files); err != nil {
		fmt.Fprintf(os.Stderr, "decode the files to write: %v\n", err)
		return 2
	}
	rep := childReport{UID: os.Geteuid()}
	if _, err := os.ReadDir(dir); err != nil {
		rep.ReadErr = err.Error()
	} else {
		res, err := Write(dir, files)
		rep.Swapped = res.Swapped
		if err != nil {
			rep.Err = err.Error()
		}
	}
	if err := json.NewEncoder(out).Encode(rep); err != nil {
		fmt.Fprintf(os.Stderr, "encode the report: %v\n", err)
		return 2
	}
	return 0
}

// writeUnprivileged is Write(dir, files) as a process without root's
// permission override: it re-executes this test binary as uid and gid
// 65534 with no supplementary groups, so that directory permissions apply
// when the tests run as root. The binary is copied next to dir, because
// the go tool's build directory is private to the user who built it, and
// dir's parent is made traversable; dir itself must be readable by others.
func writeUnprivileged(t *testing.T, dir string, files []File) (Result, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	bin := filepath.Join(filepath.Dir(dir), "atomicdir-unprivileged.test")
	if err := copyExecutable(self, bin); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Remove(bin) }()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(files)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin) //nolint:gosec // a copy of this test binary
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+dir)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("unprivileged child %s: %v\n%s", bin, err, stderr.Bytes())
		}
		// The child never started: setuid refused (e.g. a user namespace
		// without uid 65534) or the copy is not reachable as that user.
		requireCapability(t, fmt.Sprintf("running a child process as uid %d", nobodyID),
			fmt.Errorf("start %s as uid %d: %w (needs root with CAP_SETUID/CAP_SETGID, and TMPDIR traversable by other users)", bin, nobodyID, err))
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("unprivileged child's report %q: %v\n%s", stdout.Bytes(), err, stderr.Bytes())
	}
	if rep.UID != nobodyID {
		t.Fatalf("unprivileged child ran as uid %d, want %d", rep.UID, nobodyID)
	}
	if rep.ReadErr != "" {
		t.Fatalf("uid %d cannot read %s, so the write could not be tried: %s (TMPDIR must be traversable by other users)", nobodyID, dir, rep.ReadErr)
	}
	if rep.Err != "" {
		err = errors.New(rep.Err)
	} else {
		err = nil
	}
	return Result{Swapped: rep.Swapped}, err
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src) //nolint:gosec // this test binary
	if err != nil {
		return fmt.Errorf("copy the test binary: %w", err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755) //nolint:gosec // a test directory
	if err != nil {
		return fmt.Errorf("copy the test binary: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy the test binary to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy the test binary to %s: %w", dst, err)
	}
	return nil
}
