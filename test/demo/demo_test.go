package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ssinjector/ssi/internal/testing/logcheck"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// TestDemo runs `make demo` end to end, as CI's proof that it works on a
// fresh machine.
func TestDemo(t *testing.T) {
	testenv.SkipIfShort(t)
	dir := t.TempDir()
	opts := DefaultOptions()
	// As `make build` does, without -trimpath, to share the build cache
	// of `go test`.
	opts.WebhookBin = testenv.GoBuild(t, filepath.Join(dir, "ssi-webhook"), "webhook")
	opts.AgentBin = testenv.GoBuild(t, filepath.Join(dir, "ssi-agent"), "agent")
	var out bytes.Buffer
	opts.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, opts)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo failed after %s: %v", time.Since(start), err)
	}
	t.Logf("demo took %s: admission %s, first fetch %s, rotation %s", time.Since(start).Round(time.Millisecond),
		res.Admission.Round(time.Millisecond), res.FirstFetch.Round(time.Millisecond), res.Rotation.Round(time.Millisecond))

	// The pod was rewritten: the CSI volume became an in-memory emptyDir
	// that an agent container fills.
	pod := res.Pod
	if pod.Annotations["secrets-store-injector.io/status"] != "injected" {
		t.Errorf("pod not marked injected: %v", pod.Annotations)
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == "secrets-store" {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.CSI != nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("secrets-store volume not rewritten to an in-memory emptyDir: %+v", vol)
	}

	// A pod of the unmodified seed Deployment names a class that does not
	// exist: refused, with a message naming it.
	if want := `SecretProviderClass "aws-secrets" not found in namespace "production"`; !strings.Contains(res.Denial, want) {
		t.Errorf("denial %q lacks %q", res.Denial, want)
	}

	// The files before and after the rotation, as the seed guide's class
	// names them.
	want := map[string]string{"db-password": databasePassword, "api-token": apiToken}
	for name, v := range want {
		if res.Before[name] != v {
			t.Errorf("before rotation %s = %q, want %q", name, res.Before[name], v)
		}
	}
	if res.After["db-password"] != rotatedPassword || res.After["api-token"] != apiToken {
		t.Errorf("after rotation: %v", res.After)
	}
	if len(res.Before) != 2 || len(res.After) != 2 {
		t.Errorf("files before %v, after %v: want exactly db-password and api-token", keysOf(res.Before), keysOf(res.After))
	}

	// The progress output shows each step and the files.
	for _, s := range []string{"==> [1/10]", "==> [10/10]", "secrets-store-injector.io/status: injected",
		"/mnt/secrets/db-password: " + databasePassword, "/mnt/secrets/db-password: " + rotatedPassword,
		"all processes stopped"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}

	// Everything it started is gone.
	for name, pid := range res.Processes {
		if err := syscall.Kill(pid, 0); err == nil || err != syscall.ESRCH {
			t.Errorf("%s (pid %d) still exists after the demo (kill 0: %v)", name, pid, err)
		}
	}
	if len(res.Processes) != 3 {
		t.Errorf("processes %v, want vault, ssi-webhook and ssi-agent", res.Processes)
	}
}

// TestDemoStopsOnCancel cancels the demo (Ctrl-C) while its servers run and
// checks that it stops all of them.
func TestDemoStopsOnCancel(t *testing.T) {
	testenv.SkipIfShort(t)
	opts := DefaultOptions()
	opts.WebhookBin = os.Args[0] // never started: cancelled before
	opts.AgentBin = os.Args[0]
	out := logcheck.New() // safe for the demo writing and the test reading at once
	opts.Out = out
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once Vault is up (step 3 begins after it).
	go func() {
		for ctx.Err() == nil {
			if strings.Contains(out.Text(), "[3/10]") {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer cancel()
	res, err := Run(ctx, opts)
	if err == nil {
		// The demo got through step 3 before noticing; that is fine as
		// long as everything stopped.
		t.Logf("demo finished before the cancellation took effect")
	}
	if res == nil || res.Processes["vault"] == 0 {
		t.Fatalf("vault never started: %v\n%s", err, out.Text())
	}
	for name, pid := range res.Processes {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("%s (pid %d) still exists after cancellation", name, pid)
		}
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
