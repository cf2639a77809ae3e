package agent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ssinjector/ssi/internal/inject"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// benchObjects is how many secrets both agents keep in files.
const benchObjects = 10

// BenchmarkAgent measures the real ssi-agent binary (built from ./agent
// with every provider compiled in, or $SSI_AGENT_BIN) against a local Vault
// whose Kubernetes auth checks tokens with a real kube-apiserver, side by
// side with `vault agent` from the same Vault build rendering the same 10
// secrets from the same server with the same auth:
//
//	ColdStart/*     process start to all files written, login included
//	IdleMemory      resident memory (VmRSS) idle with 10 objects, and the ratio
//	RotationMemory  VmRSS right after the first write and after 100 rotation
//	                cycles of 10 unchanged objects at a 100 ms interval
//	RotationCPU     CPU (utime+stime) per rotation cycle of 10 unchanged objects, and the ratio
//
// The Vault version (bin/vault, pinned in test/vault/go.mod) is printed.
// The machine running it is usually shared: the figures are upper bounds.
// Run it with `make bench-agent`.
func BenchmarkAgent(b *testing.B) {
	agentBin := agentBinary(b)
	vaultBin, err := testenv.Binary("vault")
	if err != nil {
		b.Fatal(err)
	}
	f := newVaultFixture(b, false)
	audit := f.vault.EnableFileAudit(b)
	var objects []string
	for i := 0; i < benchObjects; i++ {
		name := fmt.Sprintf("s%d", i)
		f.put(b, name, randomValue("bench-"+name))
		objects = append(objects, name)
	}
	compiledIn := builtIn(b, agentBin)
	// Logged by the sub-benchmarks: a parent's log lines are not printed.
	vaultInfo := fmt.Sprintf("vault agent: %s (%s)", vaultVersion(b, vaultBin), vaultBin)

	// Cold start: wall time from exec to exit with every file written
	// (login and ten reads included), and the CPU the process used, which
	// contention on a shared machine does not inflate.
	coldStart := func(b *testing.B, run func(dir string) *exec.Cmd) {
		var wall, cpu time.Duration
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "out")
			start := time.Now()
			p := run(dir)
			if err := p.Wait(); err != nil {
				b.Fatalf("%s: %v", p.Path, err)
			}
			wall += time.Since(start)
			cpu += p.ProcessState.UserTime() + p.ProcessState.SystemTime()
			checkFiles(b, dir, objects)
		}
		b.ReportMetric(ms(wall)/float64(b.N), "ms/start")
		b.ReportMetric(ms(cpu)/float64(b.N), "ms-cpu/start")
	}
	b.Run("ColdStart/ssi-agent", func(b *testing.B) {
		coldStart(b, func(dir string) *exec.Cmd {
			return startSSIAgent(b, agentBin, f.config(b, dir, "app", agentconfig.ModeInitOnly, 0, objects...))
		})
	})
	b.Run("ColdStart/vault-agent", func(b *testing.B) {
		coldStart(b, func(dir string) *exec.Cmd {
			return startVaultAgent(b, vaultBin, f, dir, objects, 0, true)
		})
	})
	b.Run("IdleMemory", func(b *testing.B) {
		const settle = 5 * time.Second
		dir := filepath.Join(b.TempDir(), "ssi")
		ours := startSSIAgent(b, agentBin, f.config(b, dir, "app", agentconfig.ModeSidecar, time.Hour, objects...))
		waitFiles(b, dir, objects)
		time.Sleep(settle)
		mine := procStatus(b, ours.Process.Pid)
		stop(ours)

		vdir := filepath.Join(b.TempDir(), "vault")
		theirs := startVaultAgent(b, vaultBin, f, vdir, objects, time.Hour, false)
		waitFiles(b, vdir, objects)
		time.Sleep(settle)
		vault := procStatus(b, theirs.Process.Pid)
		stop(theirs)

		b.Logf("ssi-agent with %s; %s", compiledIn, vaultInfo)
		b.Logf("ssi-agent   VmRSS %6.1f MiB (anon %5.1f, file %5.1f); peak during start-up (VmHWM) %6.1f MiB",
			mib(mine["VmRSS"]), mib(mine["RssAnon"]), mib(mine["RssFile"]), mib(mine["VmHWM"]))
		b.Logf("vault agent VmRSS %6.1f MiB (anon %5.1f, file %5.1f); peak during start-up (VmHWM) %6.1f MiB",
			mib(vault["VmRSS"]), mib(vault["RssAnon"]), mib(vault["RssFile"]), mib(vault["VmHWM"]))
		b.ReportMetric(mib(mine["VmRSS"]), "MiB-ssi-agent")
		b.ReportMetric(mib(vault["VmRSS"]), "MiB-vault-agent")
		b.ReportMetric(mib(mine["VmHWM"]), "MiB-peak-ssi-agent")
		b.ReportMetric(mib(vault["VmHWM"]), "MiB-peak-vault-agent")
		b.ReportMetric(float64(mine["VmRSS"])/float64(vault["VmRSS"]), "rss-ratio")
	})
	b.Run("RotationMemory", func(b *testing.B) {
		const (
			interval  = 100 * time.Millisecond
			rotations = 100
		)
		probe := "secret/data/app/" + objects[len(objects)-1]
		measure := func(name string, start func(dir string) *exec.Cmd) (first, after map[string]int64, cycles int, took time.Duration) {
			dir := filepath.Join(b.TempDir(), name)
			n0 := audit.Count(b, probe)
			p := start(dir)
			defer stop(p)
			waitFiles(b, dir, objects)
			first = procStatus(b, p.Process.Pid)
			t0 := time.Now()
			deadline := t0.Add(2 * time.Minute)
			for {
				// Every cycle reads every object; the last one's reads
				// count the cycles (the first fetch included).
				if cycles = audit.Count(b, probe) - n0 - 1; cycles >= rotations {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%s made %d rotation cycles in 2m, want %d", name, cycles, rotations)
				}
				time.Sleep(200 * time.Millisecond)
			}
			return first, procStatus(b, p.Process.Pid), cycles, time.Since(t0)
		}
		mf, ma, mn, mt := measure("ssi-agent", func(dir string) *exec.Cmd {
			return startSSIAgent(b, agentBin, f.config(b, dir, "app", agentconfig.ModeSidecar, interval, objects...))
		})
		vf, va, vn, vt := measure("vault-agent", func(dir string) *exec.Cmd {
			return startVaultAgent(b, vaultBin, f, dir, objects, interval, false)
		})
		b.Logf("%s; machine shared with other builds, figures are upper bounds", vaultInfo)
		b.Logf("ssi-agent   VmRSS %6.1f MiB after the first write, %6.1f MiB after %d rotation cycles in %s (interval %s); VmHWM %6.1f MiB",
			mib(mf["VmRSS"]), mib(ma["VmRSS"]), mn, mt.Round(time.Millisecond), interval, mib(ma["VmHWM"]))
		b.Logf("vault agent VmRSS %6.1f MiB after the first write, %6.1f MiB after %d rotation cycles in %s (interval %s); VmHWM %6.1f MiB",
			mib(vf["VmRSS"]), mib(va["VmRSS"]), vn, vt.Round(time.Millisecond), interval, mib(va["VmHWM"]))
		b.ReportMetric(mib(mf["VmRSS"]), "MiB-first-write-ssi-agent")
		b.ReportMetric(mib(ma["VmRSS"]), "MiB-100-rotations-ssi-agent")
		b.ReportMetric(mib(ma["VmHWM"]), "MiB-peak-ssi-agent")
		b.ReportMetric(mib(vf["VmRSS"]), "MiB-first-write-vault-agent")
		b.ReportMetric(mib(va["VmRSS"]), "MiB-100-rotations-vault-agent")
		b.ReportMetric(mib(va["VmHWM"]), "MiB-peak-vault-agent")
	})
	b.Run("RotationCPU", func(b *testing.B) {
		const (
			interval = 500 * time.Millisecond
			window   = 30 * time.Second
		)
		probe := "secret/data/app/" + objects[0]
		measure := func(name string, start func(dir string) *exec.Cmd) (perCycle time.Duration, cycles int) {
			dir := filepath.Join(b.TempDir(), name)
			p := start(dir)
			defer stop(p)
			waitFiles(b, dir, objects)
			time.Sleep(2 * time.Second) // past start-up
			gen, _ := os.Readlink(filepath.Join(dir, "..data"))
			c0, n0 := cpuTime(b, p.Process.Pid), audit.Count(b, probe)
			time.Sleep(window)
			c1, n1 := cpuTime(b, p.Process.Pid), audit.Count(b, probe)
			if gen != "" {
				if now, _ := os.Readlink(filepath.Join(dir, "..data")); now != gen {
					b.Errorf("%s rewrote unchanged files", name)
				}
			}
			cycles = n1 - n0
			if cycles == 0 {
				b.Fatalf("%s made no rotation cycle in %s", name, window)
			}
			return (c1 - c0) / time.Duration(cycles), cycles
		}
		mine, n := measure("ssi-agent", func(dir string) *exec.Cmd {
			return startSSIAgent(b, agentBin, f.config(b, dir, "app", agentconfig.ModeSidecar, interval, objects...))
		})
		vault, vn := measure("vault-agent", func(dir string) *exec.Cmd {
			return startVaultAgent(b, vaultBin, f, dir, objects, interval, false)
		})
		// A cycle is one read of every secret (counted in Vault's audit
		// log); vault agent, configured with the same interval, reads
		// more often than it, so CPU per second is reported too.
		b.Logf("ssi-agent   %d cycles in %s: %.2f ms CPU per cycle, %.2f ms CPU per second", n, window, ms(mine), ms(mine)*float64(n)/window.Seconds())
		b.Logf("vault agent %d cycles in %s: %.2f ms CPU per cycle, %.2f ms CPU per second", vn, window, ms(vault), ms(vault)*float64(vn)/window.Seconds())
		b.ReportMetric(ms(mine), "ms-cpu/cycle-ssi-agent")
		b.ReportMetric(ms(vault), "ms-cpu/cycle-vault-agent")
		b.ReportMetric(float64(mine)/float64(vault), "cpu-ratio")
		b.ReportMetric(float64(mine)*float64(n)/(float64(vault)*float64(vn)), "cpu-per-second-ratio")
	})
}

// agentBinary is $SSI_AGENT_BIN or ssi-agent built from ./agent the way the
// Makefile builds it.
func agentBinary(b *testing.B) string {
	if p := os.Getenv("SSI_AGENT_BIN"); p != "" {
		return p
	}
	return testenv.GoBuild(b, filepath.Join(b.TempDir(), "ssi-agent"), "agent", "-trimpath")
}

// builtIn asks the binary which providers it has compiled in.
func builtIn(b *testing.B, bin string) string {
	spcFile := filepath.Join(b.TempDir(), "spc.yaml")
	_ = os.WriteFile(spcFile, []byte("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: x}\nspec: {provider: none-such}\n"), 0o644)
	out, _ := exec.Command(bin, "fetch", "--spc", spcFile, "--out", b.TempDir()).CombinedOutput()
	s := string(out)
	if i := strings.Index(s, "built-in providers: "); i >= 0 {
		return "providers " + strings.TrimRight(s[i+len("built-in providers: "):], ")\n")
	}
	return strings.TrimSpace(s)
}

// vaultVersion is the first line of `vault version`.
func vaultVersion(b *testing.B, bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		b.Fatalf("%s version: %v", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// startSSIAgent runs `ssi-agent run` configured from the environment as
// the webhook configures it; its logs go to the suite's leak check.
func startSSIAgent(b *testing.B, bin string, cfg *agentconfig.Config) *exec.Cmd {
	b.Helper()
	cfg.HealthAddr = "127.0.0.1:0"
	enc, err := cfg.Encode()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--termination-log", "-")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		agentconfig.EnvConfig + "=" + enc,
		agentconfig.EnvPodNamespace + "=" + cfg.Volumes[0].Class.Namespace,
		agentconfig.EnvPodName + "=bench-0",
		agentconfig.EnvServiceAccount + "=app",
	}
	// The Go runtime settings the webhook gives the agent container, for
	// the default agent resources.
	res := corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: inject.DefaultConfig().MemoryLimit}}
	for _, e := range inject.RuntimeEnv(res, nil) {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	return startProcess(b, cmd)
}

// startVaultAgent runs `vault agent` with Kubernetes auto-auth from the
// same projected token file and one template per secret; exitAfterAuth
// renders once and exits.
func startVaultAgent(b *testing.B, bin string, f *vaultFixture, dir string, objects []string, interval time.Duration, exitAfterAuth bool) *exec.Cmd {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var hcl strings.Builder
	fmt.Fprintf(&hcl, "exit_after_auth = %v\n", exitAfterAuth)
	fmt.Fprintf(&hcl, "vault {\n  address = %q\n}\n", f.vault.Addr)
	fmt.Fprintf(&hcl, "auto_auth {\n  method \"kubernetes\" {\n    mount_path = \"auth/kubernetes\"\n    config = {\n      role = \"app\"\n      token_path = %q\n    }\n  }\n}\n", f.tokenFile)
	if interval > 0 {
		fmt.Fprintf(&hcl, "template_config {\n  static_secret_render_interval = %q\n}\n", interval.String())
	}
	for _, o := range objects {
		fmt.Fprintf(&hcl, "template {\n  destination = %q\n  contents = %q\n}\n",
			filepath.Join(dir, o), fmt.Sprintf(`{{ with secret "secret/data/app/%s" }}{{ .Data.data.value }}{{ end }}`, o))
	}
	cfgFile := filepath.Join(b.TempDir(), "vault-agent.hcl")
	if err := os.WriteFile(cfgFile, []byte(hcl.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "-config", cfgFile, "-log-level", "warn")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir(), "GODEBUG=x509negativeserial=1"}
	return startProcess(b, cmd)
}

func startProcess(b *testing.B, cmd *exec.Cmd) *exec.Cmd {
	b.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stop(cmd) })
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			note("%s: %s", filepath.Base(cmd.Path), sc.Text())
		}
	}()
	return cmd
}

// stop ends a benchmark process by pid and reaps it.
func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func checkFiles(b *testing.B, dir string, objects []string) {
	b.Helper()
	for _, o := range objects {
		if data, err := os.ReadFile(filepath.Join(dir, o)); err != nil || !strings.HasPrefix(string(data), "bench-"+o+"-") {
			b.Fatalf("%s/%s not written: %v", dir, o, err)
		}
	}
}

func waitFiles(b *testing.B, dir string, objects []string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, o := range objects {
			if data, err := os.ReadFile(filepath.Join(dir, o)); err != nil || !strings.HasPrefix(string(data), "bench-"+o+"-") {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("files in %s not written within 30s", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStatus returns the kB fields of /proc/PID/status.
func procStatus(b *testing.B, pid int) map[string]int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		out[k] = n
	}
	return out
}

// cpuTime is utime+stime of PID from /proc/PID/stat.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func mib(kb int64) float64       { return float64(kb) / 1024 }
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
