package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// postgresHint says how to get the server binaries on a fresh machine.
const postgresHint = "install the PostgreSQL server with `apt-get install postgresql` " +
	"(.ci/run installs it); its binaries live in /usr/lib/postgresql/<version>/bin"

// Postgres is a throwaway PostgreSQL cluster on 127.0.0.1, for the Vault
// database secrets engine. It is stopped by pid when the test ends.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// User and Password are the superuser's.
	User, Password string
	// Dir holds the cluster; LogPath the server log.
	Dir, LogPath string

	proc *child.Process
}

// PostgresBinDir finds the directory holding initdb and postgres:
// /usr/local/bin, then PATH, then the newest /usr/lib/postgresql/*/bin
// (where Debian's postgresql package installs them).
func PostgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if has("/usr/local/bin") {
		return "/usr/local/bin", nil
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in /usr/local/bin, PATH or /usr/lib/postgresql/*/bin: %s", postgresHint)
}

// StartPostgres initialises a cluster in a fresh directory and starts its
// server on a free loopback port (no Unix socket). PostgreSQL refuses to
// run as root, so under root the cluster belongs to, and the server runs
// as, the "postgres" user (or "nobody").
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	SkipIfShort(t)
	bin, err := PostgresBinDir()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user.
	dir, err := os.MkdirTemp("", "ssi-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	pg := &Postgres{User: "postgres", Password: hex.EncodeToString(pw), Dir: dir, LogPath: filepath.Join(dir, "postgres.log")}
	t.Cleanup(func() {
		if pg.proc != nil {
			if err := pg.proc.Stop(syscall.SIGINT, 15*time.Second); err != nil {
				t.Errorf("stop postgres: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("postgres log (%s):\n%s", pg.LogPath, child.LogTail(pg.LogPath, 80))
		}
		_ = os.RemoveAll(dir)
	})

	cred, err := postgresCredential()
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("postgres: hand %s to uid %d: %v", dir, cred.Uid, err)
		}
	}
	env := environ([]string{"PG", "LC_", "LANG="}, "LANG=C", "LC_ALL=C")
	data := filepath.Join(dir, "data")
	initdb := exec.Command( //nolint:gosec // runs the PostgreSQL server binaries found above
		filepath.Join(bin, "initdb"), "-D", data, "-U", pg.User, "--pwfile="+pwFile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Env = env
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if pg.Port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, "postgres"), //nolint:gosec // as initdb
			"-D", data, "-p", strconv.Itoa(pg.Port),
			"-c", "listen_addresses=127.0.0.1", "-k", "",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=40", "-c", "shared_buffers=16MB")
		cmd.Env = env
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if pg.proc, lastErr = startProc("postgres", pg.LogPath, cmd); lastErr != nil {
			t.Fatal(lastErr)
		}
		if lastErr = pg.waitReady(30 * time.Second); lastErr == nil {
			return pg
		}
		_ = pg.proc.Stop(syscall.SIGINT, 10*time.Second)
		if !strings.Contains(child.LogTail(pg.LogPath, 20), "already in use") {
			break
		}
	}
	t.Fatalf("start postgres: %v\nlog:\n%s", lastErr, child.LogTail(pg.LogPath, 40))
	return nil
}

// waitReady waits for the server to say it accepts connections and to
// listen on its port.
func (pg *Postgres) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := pg.proc.Exited(); done {
			return fmt.Errorf("postgres exited: %w", exitErr(err))
		}
		b, _ := os.ReadFile(pg.LogPath)
		if strings.Contains(string(b), "database system is ready to accept connections") {
			return waitTCP(pg.proc, fmt.Sprintf("127.0.0.1:%d", pg.Port), time.Until(deadline))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the postmaster's process id.
func (pg *Postgres) Pid() int { return pg.proc.Pid() }

// postgresCredential is nil when the test runs as a normal user, else the
// credential of a user PostgreSQL accepts to run as.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and neither user postgres nor nobody exists to run PostgreSQL as: %s", postgresHint)
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
