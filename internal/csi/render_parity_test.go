package csi

import (
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
)

// TestAgentShimAndFetchRenderTheSameBytes: for the same class (templates
// annotation) and the same objects, the in-pod agent (templates resolved
// as admission hands them over), the node shim (NodePublishVolume) and
// `ssi-agent fetch` (the class file) publish the same files with the same
// bytes and modes.
func TestAgentShimAndFetchRenderTheSameBytes(t *testing.T) {
	objects := map[string]string{"db-password": `p"w\1 'x'`, "db": `{"user": "app", "hosts": ["a", "b"]}`, "api-key": "k1"}
	tests := map[string]struct {
		annotation string
		// hidden are raw object files renderOnly keeps out of the volume.
		hidden []string
	}{
		"json config with a mode": {annotation: `- path: config.json
  mode: "0640"
  template: '{"user": {{ object "db" | jsonField "user" | jsonString }}, "password": {{ object "db-password" | jsonString }}}'
`},
		"env and pgpass": {annotation: `- path: app.env
  template: |
    DB_PASSWORD={{ object "db-password" | shellQuote }}
    API_KEY={{ object "api-key" | shellQuote }}
- path: .pgpass
  mode: "0600"
  template: '{{ object "db" | jsonField "hosts.0" }}:5432:app:app:{{ object "db-password" | pgpassField }}'
`},
		"render only": {annotation: `- path: key.txt
  renderOnly: true
  template: 'key={{ object "api-key" | b64enc }}'
`, hidden: []string{"api-key"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			class := spcObject("team-a", "db", "test", map[string]string{"any": "parameter"})
			class.APIVersion, class.Kind = "secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"
			class.Annotations = map[string]string{render.Annotation: tc.annotation}
			specs, err := render.ParseAnnotation(tc.annotation)
			if err != nil {
				t.Fatal(err)
			}
			templates, err := render.Resolve(specs, nil)
			if err != nil {
				t.Fatal(err)
			}

			// The node shim.
			h := newHarness(t, nil, class)
			h.prov.set(objects, nil)
			shimDir := kubeletTarget(t, h.root, "uid-1", "secrets")
			if _, err := h.d.NodePublishVolume(context.Background(), publishReq(shimDir, web)); err != nil {
				t.Fatal(err)
			}

			// ssi-agent fetch.
			spcYAML, err := yaml.Marshal(class)
			if err != nil {
				t.Fatal(err)
			}
			spcFile := filepath.Join(t.TempDir(), "spc.yaml")
			if err := os.WriteFile(spcFile, spcYAML, 0o600); err != nil {
				t.Fatal(err)
			}
			fetchDir := filepath.Join(t.TempDir(), "out")
			if err := agent.Fetch(context.Background(), agent.FetchOptions{
				Providers: provider.NewSet(newTestProvider("test", objects)), SPCFile: spcFile, OutDir: fetchDir,
				Timeout: time.Second, RetryBase: 10 * time.Millisecond, LogOutput: io.Discard,
			}); err != nil {
				t.Fatal(err)
			}

			// The in-pod agent, init-only.
			agentDir := filepath.Join(t.TempDir(), "secrets")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := &agentconfig.Config{
				APIVersion: agentconfig.APIVersion, Mode: agentconfig.ModeInitOnly,
				FirstFetchTimeout: agentconfig.Duration{Duration: time.Second},
				Volumes: []agentconfig.Volume{{Name: "secrets", Path: agentDir, Templates: templates, Class: agentconfig.Class{
					Namespace: class.Namespace, Name: class.Name, Provider: string(class.Spec.Provider), Parameters: class.Spec.Parameters,
				}}},
			}
			if err := agent.Run(context.Background(), agent.Options{
				Config: cfg, Providers: provider.NewSet(newTestProvider("test", objects)), Listener: ln,
				Pod:            &identity.Pod{Namespace: "team-a", Name: "web-0", UID: "uid-1", ServiceAccount: "web"},
				TerminationLog: filepath.Join(t.TempDir(), "termination-log"), LogOutput: io.Discard,
				RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			}); err != nil {
				t.Fatal(err)
			}

			want := publishedFiles(t, agentDir)
			if len(want) == 0 {
				t.Fatal("the agent published nothing")
			}
			for _, tp := range templates {
				if _, ok := want[tp.Path]; !ok {
					t.Errorf("the agent did not render %s", tp.Path)
				}
			}
			for p := range objects {
				if _, ok := want[p]; ok == slices.Contains(tc.hidden, p) {
					t.Errorf("the agent's volume has %s: %v, want %v", p, ok, !slices.Contains(tc.hidden, p))
				}
			}
			for who, dir := range map[string]string{"node shim": shimDir, "ssi-agent fetch": fetchDir} {
				got := publishedFiles(t, dir)
				if len(got) != len(want) {
					t.Errorf("%s published %d files, the agent %d", who, len(got), len(want))
				}
				for p, w := range want {
					g, ok := got[p]
					switch {
					case !ok:
						t.Errorf("%s did not publish %s", who, p)
					case g.data != w.data:
						t.Errorf("%s: %s = %q, the agent's %q", who, p, g.data, w.data)
					case g.mode != w.mode:
						t.Errorf("%s: %s has mode %04o, the agent's %04o", who, p, g.mode, w.mode)
					}
				}
			}
		})
	}
}

type publishedFile struct {
	data string
	mode fs.FileMode
}

// publishedFiles reads the user-visible files of a volume with their
// modes.
func publishedFiles(t *testing.T, dir string) map[string]publishedFile {
	t.Helper()
	files, err := atomicdir.Read(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	out := map[string]publishedFile{}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		out[f.Path] = publishedFile{data: string(b), mode: fi.Mode().Perm()}
	}
	return out
}
