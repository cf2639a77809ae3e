package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// runArgs runs bin with args and no cluster to talk to, and returns what
// it printed; every binary here fails once it needs the API server, after
// parsing and validating its flags.
func runArgs(t *testing.T, bin string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "KUBERNETES_SERVICE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "KUBECONFIG="+filepath.Join(t.TempDir(), "none"), "HOME="+t.TempDir(), "POD_NAMESPACE=ns")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("%s %v succeeded without a cluster:\n%s", bin, args, out)
	}
	return string(out)
}

var undefinedFlag = regexp.MustCompile(`flag provided but not defined: -+([a-z0-9-]+)`)

// TestBinariesAcceptChartArguments runs the webhook and the node shim with
// the arguments the chart gives them: every flag must exist and every
// value must pass the binary's own validation (the binaries stop only at
// the missing API server).
func TestBinariesAcceptChartArguments(t *testing.T) {
	testenv.SkipIfShort(t)
	r := runner(t)
	dir := t.TempDir()
	webhookBin, agentBin := testenv.GoBuild(t, filepath.Join(dir, "webhook"), "webhook"), testenv.GoBuild(t, filepath.Join(dir, "agent"), "agent")
	for name, o := range map[string]Options{"defaults": {}, "non-default": nonDefault} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, o)
			dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
			out := runArgs(t, webhookBin, dep.Spec.Template.Spec.Containers[0].Args)
			if m := undefinedFlag.FindStringSubmatch(out); m != nil {
				t.Errorf("ssi-webhook rejects the chart's --%s:\n%s", m[1], out)
			} else if !strings.Contains(out, "kubernetes client configuration") {
				t.Errorf("ssi-webhook did not get past its flags and options:\n%s", out)
			}

			if sync := Get(objs, "Deployment", "ssi-sync"); sync != nil {
				out := runArgs(t, webhookBin, convert[appsv1.Deployment](t, sync).Spec.Template.Spec.Containers[0].Args)
				if m := undefinedFlag.FindStringSubmatch(out); m != nil {
					t.Errorf("ssi-webhook sync rejects the chart's --%s:\n%s", m[1], out)
				} else if !strings.Contains(out, "kubernetes client configuration") {
					t.Errorf("ssi-webhook sync did not get past its flags and options:\n%s", out)
				}
			}

			ds := convert[appsv1.DaemonSet](t, Get(objs, "DaemonSet", "ssi-node"))
			out = runArgs(t, agentBin, ds.Spec.Template.Spec.Containers[0].Args)
			switch {
			case undefinedFlag.MatchString(out):
				t.Errorf("ssi-agent csi rejects the chart's arguments:\n%s", out)
			case !strings.Contains(out, "ssi-agent: kubeconfig ") && !strings.Contains(out, "not running in a cluster"):
				t.Errorf("ssi-agent csi did not get past its flags and options:\n%s", out)
			}
		})
	}
}
