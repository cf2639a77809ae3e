package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// The templates of the two classes of TestTemplatesAgainstVaultAndMoto. A
// class has one provider (as upstream), so the Vault values and the AWS
// secret's field are rendered by one class each; every template combines
// secrets with fixed text.
const (
	tplVaultConfig = `{"db": {"host": "db.internal", "port": 5432, "user": {{ object "db-user" | jsonString }}, "password": {{ object "db-pass" | jsonString }}}}`
	// tplVaultPassword renders the file the seed guide's watchdog example
	// watches (it reacts to a file named db-password only).
	tplVaultPassword = `{{ object "db-pass" | trim }}`
	tplVaultToken    = `API_TOKEN={{ object "api-token" | shellQuote }}`
	tplAWSConfig     = `{"service": "billing", "apiKey": {{ object "prod_app" | jsonField "apiKey" | jsonString }}}`
	tplAWSFlags      = `flags={{ object "prod_flags" }}`
)

// publishLog collects the agent's "files published" log lines (JSON).
type publishLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []publishLine
}

type publishLine struct {
	Msg      string   `json:"msg"`
	Volume   string   `json:"volume"`
	Changed  []string `json:"changed"`
	Rendered []string `json:"rendered"`
}

func (l *publishLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		b := l.buf.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		var pl publishLine
		if json.Unmarshal(b[:i], &pl) == nil && pl.Msg == "files published" {
			l.lines = append(l.lines, pl)
		}
		l.buf.Next(i + 1)
	}
	return len(p), nil
}

// since returns the lines of volume logged after the first n lines.
func (l *publishLog) since(n int, volume string) []publishLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []publishLine
	for _, pl := range l.lines[n:] {
		if pl.Volume == volume {
			out = append(out, pl)
		}
	}
	return out
}

func (l *publishLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// motoSecrets writes Secrets Manager secrets to moto.
type motoSecrets struct{ c *secretsmanager.Client }

func newMotoSecrets(endpoint string) motoSecrets {
	return motoSecrets{secretsmanager.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: awscreds.NewStaticCredentialsProvider("testing", "testing", ""),
	})}
}

func (m motoSecrets) create(name, value string) error {
	suiteLogs.Secret(value)
	_, err := m.c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	return err
}

func (m motoSecrets) put(name, value string) error {
	suiteLogs.Secret(value)
	_, err := m.c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)})
	return err
}

// putKV writes secret/app/name = {"value": value} without failing the test
// (callable from any goroutine).
func (f *vaultFixture) putKV(name, value string) error {
	suiteLogs.Secret(value)
	_, err := f.vault.Client.KVv2("secret").Put(context.Background(), "app/"+name, map[string]any{"value": value})
	return err
}

// TestTemplatesAgainstVaultAndMoto runs the agent against a real Vault
// (KV v2, Kubernetes auth) and a real moto_server with one class each
// carrying templates: the files render; a rotation of one source re-renders
// only the templates using it; the seed guide's watchdog example sees the
// rendered db-password change; and a reader going through at least 500
// rotations never sees a rendered file that disagrees with the raw files of
// the same ..data snapshot.
func TestTemplatesAgainstVaultAndMoto(t *testing.T) {
	start := time.Now()
	f := newVaultFixture(t, false)
	moto := testenv.StartMoto(t)
	for _, k := range []string{"AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
	awsDir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(awsDir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(awsDir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", moto)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	sm := newMotoSecrets(moto)

	user, pass, token := randomValue("db-user"), randomValue("db-pass"), randomValue("api-token")
	apiKey, flags := randomValue("api-key"), randomValue("flags")
	for name, v := range map[string]string{"db-user": user, "db-pass": pass, "api-token": token} {
		if err := f.putKV(name, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := sm.create("prod/app", `{"apiKey":"`+apiKey+`","owner":"billing"}`); err != nil {
		t.Fatal(err)
	}
	if err := sm.create("prod/flags", flags); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	vaultDir, awsVolDir := filepath.Join(root, "vault"), filepath.Join(root, "aws")
	var objects strings.Builder
	for _, o := range []string{"db-user", "db-pass", "api-token"} {
		fmt.Fprintf(&objects, "- objectName: %s\n  secretPath: secret/data/app/%s\n  secretKey: value\n", o, o)
	}
	cfg := &agentconfig.Config{
		APIVersion:       agentconfig.APIVersion,
		Mode:             agentconfig.ModeSidecar,
		RotationInterval: agentconfig.Duration{Duration: 50 * time.Millisecond},
		LogFormat:        "json",
		Tokens:           []agentconfig.Token{{Audience: "", Path: f.tokenFile}},
		Volumes: []agentconfig.Volume{
			{Name: "vault-vol", Path: vaultDir, Class: agentconfig.Class{
				Namespace: f.ns, Name: "app-vault", Provider: "vault",
				Parameters: map[string]string{"vaultAddress": f.vault.Addr, "roleName": "app", "objects": objects.String()},
			}, Templates: []render.Template{
				{Path: "config.json", Text: tplVaultConfig, Mode: 0o640},
				{Path: "db-password", Text: tplVaultPassword},
				{Path: "token.env", Text: tplVaultToken},
			}},
			{Name: "aws-vol", Path: awsVolDir, Class: agentconfig.Class{
				Namespace: f.ns, Name: "app-aws", Provider: "aws",
				Parameters: map[string]string{"region": "us-east-1", "objects": "- objectName: prod/app\n  objectType: secretsmanager\n- objectName: prod/flags\n  objectType: secretsmanager\n"},
			}, Templates: []render.Template{
				{Path: "aws.json", Text: tplAWSConfig},
				{Path: "flags.conf", Text: tplAWSFlags},
			}},
		},
	}
	logs := &publishLog{}
	h := startAgent(t, cfg, Options{
		NewProviders: func(log *slog.Logger) provider.Set {
			return builtin.New(log, builtin.InPod, 0, limits.Config{}, builtin.Shared{})
		},
		LogOutput: multiWriter{suiteLogs, logs},
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
	})
	h.waitReady(30 * time.Second)
	t.Logf("setup (kube-apiserver, Vault, moto, first fetch) took %s", time.Since(start).Round(time.Millisecond))

	t.Run("rendered", func(t *testing.T) {
		want := map[string]string{
			filepath.Join(vaultDir, "config.json"): `{"db": {"host": "db.internal", "port": 5432, "user": "` + user + `", "password": "` + pass + `"}}`,
			filepath.Join(vaultDir, "db-password"): pass,
			filepath.Join(vaultDir, "token.env"):   "API_TOKEN='" + token + "'",
			filepath.Join(vaultDir, "db-pass"):     pass,
			filepath.Join(awsVolDir, "aws.json"):   `{"service": "billing", "apiKey": "` + apiKey + `"}`,
			filepath.Join(awsVolDir, "flags.conf"): "flags=" + flags,
		}
		for p, w := range want {
			if got := readFile(t, p); got != w {
				t.Errorf("%s does not hold the expected rendering (%d bytes, want %d)", p, len(got), len(w))
			}
		}
		if fi, err := os.Stat(filepath.Join(vaultDir, "config.json")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("config.json: %v %v, want mode 0640", fi, err)
		}
	})

	t.Run("a rotation re-renders only the templates using the changed object", func(t *testing.T) {
		tests := map[string]struct {
			rotate       func() error
			volume, dir  string
			file, want   string
			rendered     []string
			untouchedDir string
		}{
			"Vault db-pass": {
				rotate: func() error { pass = randomValue("db-pass"); return f.putKV("db-pass", pass) },
				volume: "vault-vol", dir: vaultDir, file: "db-password",
				rendered: []string{"config.json", "db-password"}, untouchedDir: awsVolDir,
			},
			"moto prod/app": {
				rotate: func() error {
					apiKey = randomValue("api-key")
					return sm.put("prod/app", `{"apiKey":"`+apiKey+`","owner":"billing"}`)
				},
				volume: "aws-vol", dir: awsVolDir, file: "aws.json",
				rendered: []string{"aws.json"}, untouchedDir: vaultDir,
			},
		}
		for _, name := range []string{"Vault db-pass", "moto prod/app"} {
			tc := tests[name]
			t.Run(name, func(t *testing.T) {
				other := dataTarget(t, tc.untouchedDir)
				before := readFile(t, filepath.Join(tc.dir, tc.file))
				n := logs.len()
				if err := tc.rotate(); err != nil {
					t.Fatal(err)
				}
				eventually(t, 10*time.Second, "the rotation published", func() bool {
					b, _ := os.ReadFile(filepath.Join(tc.dir, tc.file))
					return string(b) != before && len(logs.since(n, tc.volume)) > 0
				})
				// Let a few more cycles of both volumes pass unchanged.
				r := h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "unchanged"})
				eventually(t, 10*time.Second, "unchanged rotations", func() bool {
					return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "unchanged"}) >= r+3
				})
				lines := logs.since(n, tc.volume)
				if len(lines) != 1 {
					t.Fatalf("%d publications of %s after one rotation: %+v", len(lines), tc.volume, lines)
				}
				got := slices.Sorted(slices.Values(lines[0].Rendered))
				if !slices.Equal(got, tc.rendered) {
					t.Errorf("templates rendered = %v, want %v (only those using the changed object)", got, tc.rendered)
				}
				t.Logf("%s: published changed=%v rendered=%v", tc.volume, lines[0].Changed, lines[0].Rendered)
				if o := logs.since(n, map[string]string{"vault-vol": "aws-vol", "aws-vol": "vault-vol"}[tc.volume]); len(o) != 0 {
					t.Errorf("the other class's volume was published: %+v", o)
				}
				if dataTarget(t, tc.untouchedDir) != other {
					t.Errorf("%s/..data moved", tc.untouchedDir)
				}
			})
		}
	})

	t.Run("the seed guide's watchdog example sees the rendered file change", func(t *testing.T) {
		app := startExampleApp(t, vaultDir)
		app.expect("wrapper: observer started", 30*time.Second)
		pass = randomValue("db-pass")
		if err := f.putKV("db-pass", pass); err != nil {
			t.Fatal(err)
		}
		app.expect("Database password changed, reloading...", 10*time.Second)
		app.expect("connect_to_db password="+pass, 5*time.Second)
		app.stop()
	})

	t.Run("500 rotations, never a mix", func(t *testing.T) {
		rotStart := time.Now()
		changed := func() float64 {
			return h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "changed"}) +
				h.metric("ssi_agent_rotations_total", map[string]string{"provider": "aws", "result": "changed"})
		}
		base := changed()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		var writes atomic.Int64
		errs := make(chan error, 8)
		drive := func(put func(i int) error) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := put(i); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				writes.Add(1)
				time.Sleep(15 * time.Millisecond)
			}
		}
		wg.Add(3)
		go drive(func(int) error {
			if err := f.putKV("db-pass", randomValue("db-pass")); err != nil {
				return err
			}
			return f.putKV("db-user", randomValue("db-user"))
		})
		go drive(func(int) error {
			return sm.put("prod/app", `{"apiKey":"`+randomValue("api-key")+`","owner":"billing"}`)
		})
		var rd readerStats
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rd.check(vaultDir, checkVaultSnapshot)
				rd.check(awsVolDir, checkAWSSnapshot)
				// Publications come every ~50 ms per volume; a read
				// every millisecond sees each of them without taking a
				// core from the agent and the backends.
				time.Sleep(time.Millisecond)
			}
		}()
		// The loop ends as soon as both counts reach 500 (about 20 s on
		// an idle 2-core machine); the limit only bounds a stuck run, so
		// a machine busy with other test packages does not fail it.
		const limit = 2 * time.Minute
		deadline := time.Now().Add(limit)
		seen := func() int { rd.mu.Lock(); defer rd.mu.Unlock(); return len(rd.seen) }
		for changed()-base < 500 || seen() < 500 {
			if time.Now().After(deadline) {
				break
			}
			select {
			case err := <-errs:
				cancel()
				wg.Wait()
				t.Fatalf("driver: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		cancel()
		wg.Wait()
		got := changed() - base
		took := time.Since(rotStart)
		rd.mu.Lock()
		defer rd.mu.Unlock()
		t.Logf("%.0f rotations that published (vault %.0f, aws %.0f in all) in %s from %d backend writes; reader: %d snapshot reads checked, %d distinct snapshots, %d reads raced a removed snapshot",
			got, h.metric("ssi_agent_rotations_total", map[string]string{"provider": "vault", "result": "changed"}),
			h.metric("ssi_agent_rotations_total", map[string]string{"provider": "aws", "result": "changed"}),
			took.Round(time.Millisecond), writes.Load(), rd.checked, len(rd.seen), rd.raced)
		note("templates: %.0f published rotations in %s; reader checked %d reads over %d snapshots", got, took.Round(time.Millisecond), rd.checked, len(rd.seen))
		if got < 500 {
			t.Errorf("only %.0f rotations published within %s, want at least 500", got, limit)
		}
		for _, e := range rd.mixed {
			t.Error(e)
		}
		if len(rd.seen) < 500 {
			t.Errorf("the reader saw %d distinct snapshots, want at least 500", len(rd.seen))
		}
		if n := h.metric("ssi_agent_rotations_total", map[string]string{"result": "error"}); n > 0 {
			t.Errorf("%v rotations failed", n)
		}
	})
	t.Logf("wall time %s", time.Since(start).Round(time.Millisecond))
}

// readerStats is what the reader goroutine observed.
type readerStats struct {
	mu      sync.Mutex
	checked int
	raced   int
	seen    map[string]bool
	mixed   []string
}

// check reads one snapshot of dir: it resolves ..data once and reads every
// file from that timestamped directory, so all the bytes come from one
// published set (an old set is removed, never changed; a read racing its
// removal fails and is not counted).
func (r *readerStats) check(dir string, consistent func(files map[string]string) error) {
	target, err := os.Readlink(filepath.Join(dir, atomicdir.DataDir))
	if err != nil {
		r.add(dir, "", false, fmt.Errorf("readlink %s/..data: %w", dir, err))
		return
	}
	files := map[string]string{}
	snap := filepath.Join(dir, target)
	entries, err := os.ReadDir(snap)
	if err == nil {
		for _, e := range entries {
			b, rerr := os.ReadFile(filepath.Join(snap, e.Name()))
			if rerr != nil {
				err = rerr
				break
			}
			files[e.Name()] = string(b)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		r.add(dir, target, true, nil)
		return
	}
	if err == nil {
		err = consistent(files)
	}
	r.add(dir, target, false, err)
}

func (r *readerStats) add(dir, target string, raced bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	switch {
	case raced:
		r.raced++
	case err != nil:
		if len(r.mixed) < 10 {
			r.mixed = append(r.mixed, fmt.Sprintf("%s snapshot %s: %v", dir, target, err))
		}
	default:
		r.checked++
		r.seen[dir+"/"+target] = true
	}
}

// checkVaultSnapshot: the rendered files of the Vault class agree with its
// raw files. The errors name files, not values.
func checkVaultSnapshot(files map[string]string) error {
	var cfg struct {
		DB struct {
			Host     string `json:"host"`
			User     string `json:"user"`
			Password string `json:"password"`
		} `json:"db"`
	}
	if err := json.Unmarshal([]byte(files["config.json"]), &cfg); err != nil {
		return fmt.Errorf("config.json is not JSON (%d bytes)", len(files["config.json"]))
	}
	switch {
	case cfg.DB.Host != "db.internal":
		return errors.New("config.json lost its fixed text")
	case cfg.DB.Password != files["db-pass"]:
		return errors.New("config.json's password is not the raw db-pass of the same snapshot")
	case cfg.DB.User != files["db-user"]:
		return errors.New("config.json's user is not the raw db-user of the same snapshot")
	case files["db-password"] != strings.TrimSpace(files["db-pass"]):
		return errors.New("db-password is not the raw db-pass of the same snapshot")
	case files["token.env"] != "API_TOKEN='"+files["api-token"]+"'":
		return errors.New("token.env is not the raw api-token of the same snapshot")
	}
	return nil
}

// checkAWSSnapshot: aws.json holds the apiKey field of the raw prod_app of
// the same snapshot.
func checkAWSSnapshot(files map[string]string) error {
	var raw, rendered struct {
		APIKey  string `json:"apiKey"`
		Service string `json:"service"`
	}
	if err := json.Unmarshal([]byte(files["prod_app"]), &raw); err != nil || raw.APIKey == "" {
		return fmt.Errorf("raw prod_app is not the JSON secret (%d bytes)", len(files["prod_app"]))
	}
	if err := json.Unmarshal([]byte(files["aws.json"]), &rendered); err != nil {
		return fmt.Errorf("aws.json is not JSON (%d bytes)", len(files["aws.json"]))
	}
	switch {
	case rendered.Service != "billing":
		return errors.New("aws.json lost its fixed text")
	case rendered.APIKey != raw.APIKey:
		return errors.New("aws.json's apiKey is not the apiKey field of the raw prod_app of the same snapshot")
	case !strings.HasPrefix(files["flags.conf"], "flags="):
		return errors.New("flags.conf lost its fixed text")
	}
	return nil
}

// multiWriter writes to every writer (io.MultiWriter stops at the first
// error; these never fail).
type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

// exampleApp is the seed guide's watchdog example, run unchanged the way
// internal/atomicdir's TestWatchdogExampleReloads runs it (the same copy of
// the guide's script, the same wrapper defining connect_to_db): python3 in
// a private mount namespace where dir is bind-mounted on /mnt/secrets,
// which the example hardcodes.
type exampleApp struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
}

func startExampleApp(t *testing.T, dir string) *exampleApp {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import watchdog.observers").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("/usr/bin/python3 cannot import watchdog (apt-get install python3-watchdog): %w: %s", err, strings.TrimSpace(string(out)))
	}
	testenv.RequireCapability(t, "Python watchdog module", err)
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.RequireCapability(t, "unshare", fmt.Errorf("unshare (util-linux) creates the mount namespace: apt-get install util-linux: %w", err))
	}
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-ec", "mount -t tmpfs ssi-probe /mnt").CombinedOutput(); err != nil {
		testenv.RequireCapability(t, "mount namespaces", fmt.Errorf("unshare -m and mount -t tmpfs: %w: %s (needs root with CAP_SYS_ADMIN)", err, strings.TrimSpace(string(out))))
	}
	script := filepath.Join(testenv.RepoRoot(), "test", "testdata", "seed", "example-app.py")
	wrapper := filepath.Join(testenv.RepoRoot(), "internal", "atomicdir", "testdata", "run_example_app.py")
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-ec",
		`mount -t tmpfs ssi-test /mnt; mkdir /mnt/secrets; mount --bind "$1" /mnt/secrets; exec /usr/bin/python3 -u "$2" "$3"`,
		"sh", dir, wrapper, script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = testLineWriter{t, "example-app stderr: "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &exampleApp{t: t, cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(a.stop)
	go func() {
		defer close(a.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
	}()
	return a
}

// expect waits for the line want; another reload line fails the test.
func (a *exampleApp) expect(want string, timeout time.Duration) {
	a.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("example app exited before printing the line expected")
			}
			if l == want {
				a.t.Logf("example app printed the expected line (%d bytes)", len(l))
				return
			}
			if strings.HasPrefix(l, "connect_to_db") {
				a.t.Fatalf("example app reloaded with another value than expected")
			}
			a.t.Logf("example app: %s", l)
		case <-deadline:
			a.t.Fatalf("example app did not print the expected line within %s", timeout)
		}
	}
}

func (a *exampleApp) stop() {
	if a.cmd.Process != nil {
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		_ = a.cmd.Wait()
		a.cmd.Process = nil
	}
}

type testLineWriter struct {
	t      *testing.T
	prefix string
}

func (w testLineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// TestSnapshotChecksDetectAMix: the consistency checks of the 500-rotation
// reader fail on a snapshot whose rendered file comes from other values
// than its raw files.
func TestSnapshotChecksDetectAMix(t *testing.T) {
	vaultOK := map[string]string{
		"db-user": "u1", "db-pass": "p1", "api-token": "t1", "db-password": "p1", "token.env": "API_TOKEN='t1'",
		"config.json": `{"db": {"host": "db.internal", "port": 5432, "user": "u1", "password": "p1"}}`,
	}
	awsOK := map[string]string{
		"prod_app": `{"apiKey":"k1","owner":"billing"}`, "prod_flags": "f1", "flags.conf": "flags=f1",
		"aws.json": `{"service": "billing", "apiKey": "k1"}`,
	}
	with := func(m map[string]string, k, v string) map[string]string {
		c := maps.Clone(m)
		c[k] = v
		return c
	}
	tests := map[string]struct {
		check   func(map[string]string) error
		files   map[string]string
		wantErr bool
	}{
		"vault consistent":          {check: checkVaultSnapshot, files: vaultOK},
		"vault password mixed":      {check: checkVaultSnapshot, files: with(vaultOK, "db-pass", "p2"), wantErr: true},
		"vault user mixed":          {check: checkVaultSnapshot, files: with(vaultOK, "db-user", "u2"), wantErr: true},
		"vault db-password mixed":   {check: checkVaultSnapshot, files: with(vaultOK, "db-password", "p2"), wantErr: true},
		"vault fixed text lost":     {check: checkVaultSnapshot, files: with(vaultOK, "config.json", `{"db": {"user": "u1", "password": "p1"}}`), wantErr: true},
		"aws consistent":            {check: checkAWSSnapshot, files: awsOK},
		"aws apiKey mixed":          {check: checkAWSSnapshot, files: with(awsOK, "prod_app", `{"apiKey":"k2"}`), wantErr: true},
		"aws rendered not JSON":     {check: checkAWSSnapshot, files: with(awsOK, "aws.json", "{"), wantErr: true},
		"aws flags fixed text lost": {check: checkAWSSnapshot, files: with(awsOK, "flags.conf", "f1"), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.check(tc.files); (err != nil) != tc.wantErr {
				t.Errorf("check = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
