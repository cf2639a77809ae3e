package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
)

// TestAgentRendersTemplates: the agent compiles the templates of its
// configuration and publishes the rendered file with the objects; a
// template failing on the first fetch fails it with the template and no
// value.
func TestAgentRendersTemplates(t *testing.T) {
	tests := map[string]struct {
		text    string
		want    string
		wantErr string
	}{
		"renders":         {text: `user={{ object "user" }} pw={{ object "pw" | shellQuote }}`, want: "user=tpl-user-0001 pw='tpl-pw-0001'"},
		"execution error": {text: `{{ (object "pw" | fromJson).x }}`, wantErr: `template "app.env" at 1:`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake("fake", map[string]string{"user": "tpl-user-0001", "pw": "tpl-pw-0001"})
			cfg := testConfig(t, agentconfig.ModeInitOnly, time.Hour, "app")
			cfg.FirstFetchTimeout.Duration = 200 * time.Millisecond
			cfg.Volumes[0].Templates = []render.Template{{Path: "app.env", Text: tc.text}}
			h := startAgent(t, cfg, Options{Providers: provider.NewSet(f)})
			err := h.wait(5 * time.Second)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "app.env")); got != tc.want {
				t.Errorf("app.env = %q, want %q", got, tc.want)
			}
			if got := readFile(t, filepath.Join(cfg.Volumes[0].Path, "pw")); got != "tpl-pw-0001" {
				t.Errorf("raw pw = %q", got)
			}
		})
	}
}

// TestFetchRendersTemplates: `ssi-agent fetch` renders the --spc file's
// inline templates; a configMapKeyRef is refused naming the template.
func TestFetchRendersTemplates(t *testing.T) {
	tests := map[string]struct {
		annotation string
		want       string
		wantErr    string
	}{
		"inline": {annotation: `- {path: pgpass, template: 'db:5432:app:app:{{ object "db-password" | pgpassField }}', mode: "0600"}`, want: "db:5432:app:app:fetch-pw-0001"},
		"configMapKeyRef": {annotation: `- {path: pgpass, configMapKeyRef: {name: t, key: k}}`,
			wantErr: `SecretProviderClass default/local-vault: annotation secrets-store-injector.io/templates: template "pgpass": configMapKeyRef t/k: no ConfigMap reader`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			meta := "  annotations:\n    " + render.Annotation + ": |\n      " + tc.annotation
			spcFile := writeTemp(t, "spc.yaml", strings.Replace(vaultClassYAML, "%s", meta, 1))
			f := newFake("vault", map[string]string{"db-password": "fetch-pw-0001"})
			out := filepath.Join(t.TempDir(), "out")
			err := Fetch(context.Background(), FetchOptions{
				Providers: provider.NewSet(f), SPCFile: spcFile, OutDir: out,
				Timeout: 300 * time.Millisecond, RetryBase: 10 * time.Millisecond, LogOutput: suiteLogs.Tee(t),
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(out, "pgpass")); got != tc.want {
				t.Errorf("pgpass = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAgentAndFetchRenderTheSameBytes: the in-pod agent (templates from its
// configuration) and `ssi-agent fetch` (templates from the class file's
// annotation) publish identical rendered files for the same class.
func TestAgentAndFetchRenderTheSameBytes(t *testing.T) {
	const text = `{"password": {{ object "db-password" | jsonString }}, "b64": {{ object "db-password" | b64enc | jsonString }}}`
	values := map[string]string{"db-password": `same-"bytes"\pw-0001`}

	spcFile := writeTemp(t, "spc.yaml", strings.Replace(vaultClassYAML, "%s",
		"  namespace: team-a\n  annotations:\n    "+render.Annotation+": |\n      - path: config.json\n        mode: \"0640\"\n        template: '"+text+"'", 1))
	out := filepath.Join(t.TempDir(), "out")
	if err := Fetch(context.Background(), FetchOptions{
		Providers: provider.NewSet(newFake("vault", values)), SPCFile: spcFile, OutDir: out,
		Timeout: 300 * time.Millisecond, RetryBase: 10 * time.Millisecond, LogOutput: suiteLogs.Tee(t),
	}); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, agentconfig.ModeInitOnly, time.Hour, "app")
	cfg.FirstFetchTimeout.Duration = time.Second
	class, err := ReadClassFile(spcFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Volumes[0].Class = agentconfig.Class{Namespace: class.Namespace, Name: class.Name, Provider: class.Provider, Parameters: class.Parameters}
	cfg.Volumes[0].Templates = []render.Template{{Path: "config.json", Text: text, Mode: 0o640}}
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(newFake("vault", values))})
	if err := h.wait(5 * time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}

	for _, name := range []string{"config.json", "db-password"} {
		a := readFile(t, filepath.Join(cfg.Volumes[0].Path, name))
		f := readFile(t, filepath.Join(out, name))
		if a != f {
			t.Errorf("%s: agent wrote %q, fetch wrote %q", name, a, f)
		}
	}
	for _, dir := range []string{cfg.Volumes[0].Path, out} {
		if fi, err := os.Stat(filepath.Join(dir, "config.json")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s/config.json: %v %v, want mode 0640", dir, fi, err)
		}
	}
	if got := readFile(t, filepath.Join(out, "config.json")); !strings.HasPrefix(got, `{"password": "same-\"bytes\"\\pw-0001"`) {
		t.Errorf("config.json = %q", got)
	}
}
