package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCommands drives the command line as a user does.
func TestCommands(t *testing.T) {
	seed := "../test/testdata/seed/"
	tests := map[string]struct {
		args    []string
		stdin   string
		want    []string // substrings of standard output
		wantErr string
	}{
		"inject with flags": {
			args: []string{"inject", "-f", seed + "deployment-with-secrets.yaml", "--spc", seed + "aws-secret-provider.yaml",
				"--namespace-label", "secrets-store-injector.io/injection=enabled", "--native-sidecars=false", "--agent-image", "registry.local/ssi-agent:v1", "--rotation-interval", "45s", "--agent-env", "HTTPS_PROXY=http://proxy:3128"},
			want: []string{"name: ssi-agent-init", "image: registry.local/ssi-agent:v1", `"mode":"rotate"`, `"rotationInterval":"45s"`, "secrets-store-injector.io/status: injected", "name: HTTPS_PROXY\n          value: http://proxy:3128"},
		},
		"inject from stdin": {
			args:  []string{"inject", "-f", "-", "--spc", seed + "vault-secret-provider.yaml", "--namespace", "production"},
			stdin: strings.Replace(mustRead(t, seed+"deployment-with-secrets.yaml"), `"aws-secrets"`, `"vault-secrets"`, 1) + "\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: production\n  labels: {secrets-store-injector.io/injection: enabled}\n",
			want:  []string{"name: ssi-agent", "restartPolicy: Always", "kind: Namespace"},
		},
		"inject without input": {args: []string{"inject"}, wantErr: "no input"},
		"inject bad label":     {args: []string{"inject", "-f", "-", "--namespace-label", "novalue"}, wantErr: `"novalue" is not key=value`},
		"inject stray args":    {args: []string{"inject", "file.yaml"}, wantErr: "input files go after -f"},
		"serve bad policy":     {args: []string{"serve", "--failure-policy", "Maybe"}, wantErr: `failure policy "Maybe" is neither Ignore nor Fail`},
		"serve bad option":     {args: []string{"--native-sidecars", "sometimes", "--cert-dir", t.TempDir()}, wantErr: `--native-sidecars "sometimes" is not auto, true or false`},
		"unknown command":      {args: []string{"mutate"}, wantErr: `unknown command "mutate"`},
		"serve bad log level":  {args: []string{"serve", "--log-level", "trace"}, wantErr: `invalid value "trace" for flag -log-level: log level "trace" is not debug, info, warn or error`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, strings.NewReader(tc.stdin), &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	var b bytes.Buffer
	if err := run(context.Background(), []string{"inject", "-f", p}, nil, &b, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
