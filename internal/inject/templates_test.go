package inject

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/ssinjector/ssi/internal/render"
)

// agentOf returns the configuration of the injected agent, wherever the
// shape placed it.
func agentOf(t *testing.T, pod *corev1.PodTemplateSpec) *corev1.Container {
	t.Helper()
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		if _, c := findContainer(cs, AgentContainerName); c != nil {
			return c
		}
	}
	t.Fatal("no agent container")
	return nil
}

// TestTemplatesAdmission: the class's templates are parsed, resolved
// (inline or from a ConfigMap of the pod's namespace), compiled against
// the class's files and handed to the agent; every refusal is a
// class-invalid denial naming the class, the template and the position.
func TestTemplatesAdmission(t *testing.T) {
	cms := map[string]map[string]string{"tpl": {"config.json": `{"password": {{ object "db-password" | toJson }}}`}}
	get := func(name, key string) (string, bool, error) {
		v, ok := cms[name][key]
		return v, ok, nil
	}
	tests := map[string]struct {
		annotation string
		get        render.ConfigMapGetter
		want       []render.Template
		wantErr    []string
	}{
		"inline": {
			annotation: "- path: db.env\n  template: 'DB_PASSWORD={{ object \"db-password\" | shellQuote }}'\n  mode: \"0600\"\n  renderOnly: true\n",
			want:       []render.Template{{Path: "db.env", Text: `DB_PASSWORD={{ object "db-password" | shellQuote }}`, Mode: 0o600, RenderOnly: true}},
		},
		"from a ConfigMap": {
			annotation: "- path: config.json\n  configMapKeyRef: {name: tpl, key: config.json}\n",
			get:        get,
			want:       []render.Template{{Path: "config.json", Text: cms["tpl"]["config.json"]}},
		},
		"no annotation": {},
		"syntax": {
			annotation: "- path: a.txt\n  template: '{{ object \"db-password\" '\n",
			wantErr:    []string{"SecretProviderClass production/vault", `template "a.txt" at 1:`},
		},
		"unknown object": {
			annotation: "- path: a.txt\n  template: '{{ object \"nope\" }}'\n",
			wantErr:    []string{"SecretProviderClass production/vault", `template "a.txt" at 1:`, `"nope"`},
		},
		"unknown function": {
			annotation: "- path: a.txt\n  template: '{{ env \"HOME\" }}'\n",
			wantErr:    []string{"SecretProviderClass production/vault", `template "a.txt"`, "env"},
		},
		"missing ConfigMap key": {
			annotation: "- path: a.txt\n  configMapKeyRef: {name: tpl, key: other}\n",
			get:        get,
			wantErr:    []string{"SecretProviderClass production/vault", `template "a.txt"`, "ConfigMap tpl has no key other"},
		},
		"no ConfigMap reader": {
			annotation: "- path: a.txt\n  configMapKeyRef: {name: tpl, key: config.json}\n",
			wantErr:    []string{"SecretProviderClass production/vault", `template "a.txt"`, "no ConfigMap reader"},
		},
		"malformed": {
			annotation: "path: a.txt\n",
			wantErr:    []string{"SecretProviderClass production/vault", render.Annotation, "YAML list"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := input(podWith(nil, "vault"))
			c := in.Classes["vault"]
			if tc.annotation != "" {
				c.Annotations = map[string]string{render.Annotation: tc.annotation}
			}
			in.ConfigMap = tc.get
			cfg := DefaultConfig()
			res, err := Rewrite(&cfg, in)
			if tc.wantErr != nil {
				var e *Error
				if !errors.As(err, &e) || e.Reason != ReasonClassInvalid {
					t.Fatalf("error = %v, want a %s denial", err, ReasonClassInvalid)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := decodeAgent(t, *agentOf(t, res.Pod)).Volumes[0].Templates
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("agent templates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTemplatesPerPodCap: the templates of all a pod's classes together
// are capped, since they travel in the agent's environment.
func TestTemplatesPerPodCap(t *testing.T) {
	text := `{{ object "db-password" }}` + strings.Repeat("x", render.MaxTemplateBytes-100)
	var b strings.Builder
	for i := range 5 {
		b.WriteString("- path: t" + string(rune('a'+i)) + ".txt\n  template: '" + text + "'\n")
	}
	in := input(podWith(nil, "vault"))
	in.Classes["vault"].Annotations = map[string]string{render.Annotation: b.String()}
	cfg := DefaultConfig()
	_, err := Rewrite(&cfg, in)
	if ReasonOf(err) != ReasonClassInvalid || err == nil || !strings.Contains(err.Error(), "more than the limit of 262144 per pod") {
		t.Fatalf("error = %v, want the per-pod template cap", err)
	}
	// Four fit.
	b.Reset()
	for i := range 4 {
		b.WriteString("- path: t" + string(rune('a'+i)) + ".txt\n  template: '" + text + "'\n")
	}
	in.Classes["vault"].Annotations = map[string]string{render.Annotation: b.String()}
	if _, err := Rewrite(&cfg, in); err != nil {
		t.Fatalf("four templates under the cap: %v", err)
	}
}
