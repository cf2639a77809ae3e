package security

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testing/child"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// podsecNobody is the user (and group) the agent and the attacking app
// share, as when the webhook runs the agent as the app's runAsUser.
const podsecNobody = 65534

// podsecNeedRoot skips a test that must start processes as other users
// when the test does not run as root; under CI it fails instead, so that
// the attack test never silently stops running.
func podsecNeedRoot(t *testing.T) {
	t.Helper()
	testenv.RequireCapability(t, "root (processes as other users)", testenv.AsRoot())
}

// podsecSharedDir is a temporary directory every user can traverse
// (t.TempDir is <tmp>/<test name><n>/<seq>, both private).
func podsecSharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// podsecRunAs runs name with args as uid/gid (and supplementary groups)
// and returns its output and whether it exited 0.
func podsecRunAs(t *testing.T, uid, gid uint32, groups []uint32, name string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run %s as %d: %v", name, uid, err)
		}
	}
	return string(out), err == nil
}

// TestPodsecAppCannotReadAgentThroughProc is finding 2 of issue 14, as a
// pod author who shares the pod's process namespace (shareProcessNamespace,
// or reload-signal) and runs the app with the agent's user would try it:
// read the agent's environment and, through /proc/<agent>/root, the
// projected token in the agent's mount namespace. The agent is the shipped
// binary, `ssi-agent run`, started as uid 65534 and kept busy in its first
// fetch; the attacker is another process of uid 65534.
func TestPodsecAppCannotReadAgentThroughProc(t *testing.T) {
	testenv.SkipIfShort(t)
	podsecNeedRoot(t)
	dir := podsecSharedDir(t)
	bin := testenv.GoBuild(t, filepath.Join(dir, "ssi-agent"), "agent")

	// The token the agent logs in with; in a pod it is mounted into the
	// agent container only, so /proc/<agent>/root is the app's one way in.
	const tokenValue = "podsec-token-eyJhbGciOi"
	const envSecret = "podsec-env-credential-7f3a"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tokenValue), 0o400); err != nil {
		t.Fatal(err)
	}
	volDir := filepath.Join(dir, "vol")
	if err := os.Mkdir(volDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tokenFile, volDir} {
		if err := os.Chown(p, podsecNobody, podsecNobody); err != nil {
			t.Fatal(err)
		}
	}

	// A Vault that accepts the login connection and never answers keeps
	// the agent in its first fetch, after it has read its token.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for {
			select {
			case c := <-accepted:
				_ = c.Close()
			default:
				return
			}
		}
	})

	healthAddr := testenv.FreeAddr(t)
	cfg := agentconfig.Config{
		Mode: agentconfig.ModeSidecar,
		Volumes: []agentconfig.Volume{{Name: "secrets", Path: volDir, Class: agentconfig.Class{
			Namespace: "tenant", Name: "vault-class", Provider: "vault",
			Parameters: map[string]string{
				"vaultAddress": "http://" + ln.Addr().String(),
				"roleName":     "app",
				"audience":     "vault",
				"objects":      "- objectName: password\n  secretPath: secret/data/app\n  secretKey: password\n",
			},
		}}},
		RotationInterval:  agentconfig.Duration{Duration: time.Minute},
		FirstFetchTimeout: agentconfig.Duration{Duration: 2 * time.Minute},
		Tokens:            []agentconfig.Token{{Audience: "vault", Path: tokenFile}},
		HealthAddr:        healthAddr,
		LogFormat:         "text",
	}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "--termination-log", "-")
	cmd.Env = []string{
		agentconfig.EnvConfig + "=" + enc,
		agentconfig.EnvPodNamespace + "=tenant", agentconfig.EnvPodName + "=app",
		"PATH=/usr/bin:/bin",
		// A credential in the agent's environment, as --agent-env
		// VAULT_TOKEN or an SDK variable would put it there.
		"PODSEC_CREDENTIAL=" + envSecret,
	}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: podsecNobody, Gid: podsecNobody}}
	agent, err := child.Start("ssi-agent run", cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Stop(syscall.SIGTERM, 5*time.Second) })

	select {
	case c := <-accepted:
		accepted <- c // closed by the cleanup
	case <-time.After(60 * time.Second):
		done, werr := agent.Exited()
		t.Fatalf("the agent never contacted Vault (exited %v: %v); its log:\n%s", done, werr, logs.String())
	}

	pid := strconv.Itoa(agent.Pid())
	attacks := map[string]struct {
		path   string
		secret string
	}{
		"environment":              {path: "/proc/" + pid + "/environ", secret: envSecret},
		"token through /proc/root": {path: "/proc/" + pid + "/root" + tokenFile, secret: tokenValue},
	}
	for name, a := range attacks {
		t.Run(name, func(t *testing.T) {
			out, ok := podsecRunAs(t, podsecNobody, podsecNobody, nil, "cat", a.path)
			if ok || strings.Contains(out, a.secret) {
				t.Fatalf("a process of the agent's user read %s (exit 0: %v, %d bytes, the secret among them: %v)", a.path, ok, len(out), strings.Contains(out, a.secret))
			}
			if !strings.Contains(out, "Permission denied") {
				t.Fatalf("reading %s failed, but not with EACCES: %s", a.path, out)
			}
		})
	}

	// What sharing the process namespace still gives the app (documented
	// in docs/agent.md): it sees the agent and can signal it.
	t.Run("signals and process list still work", func(t *testing.T) {
		if out, ok := podsecRunAs(t, podsecNobody, podsecNobody, nil, "kill", "-0", pid); !ok {
			t.Fatalf("kill -0 %s as the agent's user failed: %s", pid, out)
		}
		out, ok := podsecRunAs(t, podsecNobody, podsecNobody, nil, "cat", "/proc/"+pid+"/cmdline")
		if !ok || !strings.Contains(out, "ssi-agent") {
			t.Fatalf("the agent's command line is not visible to the app: %q", out)
		}
	})
	// The agent itself still reads what it needs of its own /proc: the
	// process collector behind /metrics reads /proc/self/stat, fd and
	// limits, which a non-dumpable process owns no more.
	t.Run("the agent still reads its own /proc", func(t *testing.T) {
		resp, err := http.Get("http://" + healthAddr + "/metrics") //nolint:noctx // loopback test
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %s\n%s", resp.Status, body)
		}
		for _, m := range []string{"process_open_fds ", "process_resident_memory_bytes ", "process_max_fds "} {
			if !strings.Contains(string(body), m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})
	if done, werr := agent.Exited(); done {
		t.Fatalf("the agent exited during the test: %v\n%s", werr, logs.String())
	}
}
