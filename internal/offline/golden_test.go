package offline

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/inject"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const seedDir = "../../test/testdata/seed"

var enabled = map[string]string{inject.LabelInjection: inject.LabelValueEnabled}

// seedDeployment writes the seed guide's Deployment with its volume naming
// class, as a user of that class would write it, and returns the file.
func seedDeployment(t *testing.T, class string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(seedDir, "deployment-with-secrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const ref = `secretProviderClass: "aws-secrets"`
	if bytes.Count(b, []byte(ref)) != 1 {
		t.Fatalf("seed deployment no longer names its class as %s", ref)
	}
	b = bytes.Replace(b, []byte(ref), []byte(`secretProviderClass: "`+class+`"`), 1)
	p := filepath.Join(t.TempDir(), "deployment-with-secrets.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var seedClasses = []string{
	seedDir + "/aws-secret-provider.yaml",
	seedDir + "/azure-secret-provider.yaml",
	seedDir + "/gcp-secret-provider.yaml",
	seedDir + "/vault-secret-provider.yaml",
}

type goldenCase struct {
	// files are the inputs; "seed:CLASS" is the seed Deployment naming CLASS.
	files  []string
	spc    []string
	labels map[string]string
	legacy bool
	// warnings are substrings that must each appear in a warning line.
	warnings []string
	// unchanged: the output must equal the input documents as written.
	unchanged bool
}

func goldenCases() map[string]goldenCase {
	sa := "testdata/serviceaccount.yaml"
	return map[string]goldenCase{
		"seed-aws":        {files: []string{"seed:aws-secrets", sa}, spc: seedClasses, labels: enabled},
		"seed-azure":      {files: []string{"seed:azure-keyvault", sa}, spc: seedClasses, labels: enabled},
		"seed-gcp":        {files: []string{"seed:gcp-secrets", sa}, spc: seedClasses, labels: enabled},
		"seed-vault":      {files: []string{"seed:vault-secrets", sa}, spc: seedClasses, labels: enabled},
		"seed-unlabelled": {files: []string{"seed:aws-secrets", sa}, spc: seedClasses, unchanged: true},
		"init-containers": {files: []string{"testdata/init-containers.yaml"}, spc: seedClasses, labels: enabled},
		"native-sidecars": {files: []string{"testdata/native-sidecars.yaml"}, spc: seedClasses, labels: enabled},
		"several-containers": {files: []string{"testdata/several-containers.yaml", sa}, spc: seedClasses, labels: enabled,
			warnings: []string{`container "worker" mounts secrets volume "secrets-store" with subPath`}},
		"container-selection": {files: []string{"testdata/container-selection.yaml"}, spc: seedClasses, labels: enabled},
		"no-service-account": {files: []string{"testdata/no-service-account.yaml"}, spc: seedClasses, labels: enabled,
			warnings: []string{`service account "default" is unknown, so no IRSA role is set`}},
		"already-injected": {files: []string{"testdata/already-injected.yaml"}, spc: seedClasses, labels: enabled, unchanged: true},
		"opt-out":          {files: []string{"testdata/opt-out.yaml"}, spc: seedClasses, labels: enabled, unchanged: true},
		"two-volumes":      {files: []string{"testdata/two-volumes.yaml", sa}, spc: seedClasses, labels: enabled},
		"cronjob":          {files: []string{"testdata/cronjob.yaml"}, spc: seedClasses},
		"legacy":           {files: []string{"seed:vault-secrets", sa}, spc: seedClasses, labels: enabled, legacy: true},
		"legacy-job": {files: []string{"testdata/legacy-job.yaml"}, spc: seedClasses, labels: enabled, legacy: true,
			warnings: []string{"restartPolicy is Never: a rotating sidecar would keep it from completing"}},
		"init-only":           {files: []string{"testdata/init-only.yaml"}, spc: seedClasses, labels: enabled},
		"reload-signal":       {files: []string{"testdata/reload-signal.yaml"}, spc: seedClasses, labels: enabled},
		"reload-mesh":         {files: []string{"testdata/reload-mesh.yaml"}, spc: seedClasses, labels: enabled},
		"node-publish-secret": {files: []string{"testdata/node-publish-secret.yaml"}, labels: enabled},
		"plugin-provider": {files: []string{"testdata/plugin-provider.yaml", sa}, spc: seedClasses, labels: enabled,
			warnings: []string{`uses provider "conjur", which is not built in`, `volume "vault": csi.readOnly is not true`}},
		"gcp-federation": {files: []string{"testdata/gcp-federation.yaml", sa}, spc: seedClasses, labels: enabled},
		"list":           {files: []string{"testdata/list.yaml"}},
	}
}

func runCase(t *testing.T, c goldenCase) (out, diag string, inputs []string) {
	t.Helper()
	opts := Options{SPCFiles: c.spc, NamespaceLabels: c.labels, Config: inject.DefaultConfig()}
	opts.Config.NativeSidecars = !c.legacy
	for _, f := range c.files {
		if cls, ok := strings.CutPrefix(f, "seed:"); ok {
			f = seedDeployment(t, cls)
		}
		opts.Files = append(opts.Files, f)
	}
	var o, d bytes.Buffer
	if err := Run(opts, strings.NewReader(""), &o, &d); err != nil {
		t.Fatalf("inject: %v", err)
	}
	return o.String(), d.String(), opts.Files
}

// TestGolden rewrites each input and compares the whole output stream
// with testdata/NAME.golden.yaml (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for name, c := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			out, diag, inputs := runCase(t, c)
			for _, w := range c.warnings {
				if !strings.Contains(diag, w) {
					t.Errorf("warnings lack %q; got:\n%s", w, diag)
				}
			}
			if c.unchanged {
				if got, want := docsOf(t, out), docsOf(t, readAll(t, inputs)); !cmp.Equal(got, want) {
					t.Errorf("pod changed although it must not be:\n%s", cmp.Diff(want, got))
				}
			}
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(docsOf(t, string(want)), docsOf(t, out)); diff != "" {
				t.Errorf("output differs from %s (-want +got):\n%s", golden, diff)
			}
			if string(want) != out {
				t.Errorf("output is not byte-identical to %s although the objects are equal", golden)
			}
		})
	}
}

// TestIdempotent feeds every rewritten output back in: nothing changes,
// as under the webhook's reinvocationPolicy IfNeeded.
func TestIdempotent(t *testing.T) {
	for name, c := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			out, _, _ := runCase(t, c)
			f := filepath.Join(t.TempDir(), "out.yaml")
			if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			again := c
			again.files = []string{f}
			out2, _, _ := runCase(t, again)
			if diff := cmp.Diff(docsOf(t, out), docsOf(t, out2)); diff != "" {
				t.Errorf("second rewrite changed the output (-first +second):\n%s", diff)
			}
		})
	}
}

// TestDeterministic runs each case several times: the output is the same
// bytes every time (no map-order or time dependence).
func TestDeterministic(t *testing.T) {
	for name, c := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			first, _, _ := runCase(t, c)
			for i := 0; i < 5; i++ {
				if again, _, _ := runCase(t, c); again != first {
					t.Fatalf("run %d differs from the first", i+2)
				}
			}
		})
	}
}

func readAll(t *testing.T, files []string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n---\n")
		b.Write(data)
	}
	return b.String()
}

// docsOf parses a stream into generic objects, for whole-object comparison.
func docsOf(t *testing.T, s string) []map[string]any {
	t.Helper()
	docs, err := split("test", []byte(s))
	if err != nil {
		t.Fatalf("parse output: %v\n%s", err, s)
	}
	var out []map[string]any
	for _, d := range docs {
		var m map[string]any
		if err := yaml.Unmarshal(d.raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
