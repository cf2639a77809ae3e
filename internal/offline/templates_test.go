package offline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/inject"
)

// TestTemplatesFromStreamConfigMaps: a class's configMapKeyRef template is
// read from a ConfigMap of the stream in the class's namespace; a missing
// one is refused like the webhook would.
func TestTemplatesFromStreamConfigMaps(t *testing.T) {
	class := strings.Replace(vaultClass, "  name: vault-secrets\n", "  name: vault-secrets\n  annotations:\n    secrets-store-injector.io/templates: |\n      - path: app.env\n        configMapKeyRef: {name: tpl, key: app.env}\n", 1)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tpl\ndata:\n  app.env: 'DB={{ object \"db\" | shellQuote }}'\n"
	otherNS := strings.Replace(cm, "  name: tpl\n", "  name: tpl\n  namespace: elsewhere\n", 1)
	pod := strings.Replace(podUsing, "CLASS", "vault-secrets", 1)
	tests := map[string]struct {
		docs    []string
		wantErr string
	}{
		"ConfigMap in the stream":    {docs: []string{cm, class, pod}},
		"ConfigMap after the pod":    {docs: []string{class, pod, cm}},
		"no ConfigMap":               {docs: []string{class, pod}, wantErr: "ConfigMap tpl has no key app.env"},
		"ConfigMap of another space": {docs: []string{otherNS, class, pod}, wantErr: "ConfigMap tpl has no key app.env"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, diag bytes.Buffer
			err := Run(Options{Files: []string{"-"}, NamespaceLabels: enabled, Config: inject.DefaultConfig()}, strings.NewReader(strings.Join(tc.docs, "---\n")), &out, &diag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `template "app.env"`) {
					t.Fatalf("error = %v, want %q naming the template", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The agent configuration (JSON in an env var)
			// carries the resolved text (whitespace collapsed: YAML folds the
			// long scalar).
			if got := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(got, `"path":"app.env","text":"DB={{ object \"db\" | shellQuote }}"`) {
				t.Errorf("the agent configuration lacks the resolved template:\n%s", out.String())
			}
		})
	}
}
