package offline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/inject"
)

const vaultClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: vault-secrets
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: db
        secretPath: secret/data/db
        secretKey: password
`

const podUsing = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: app
    image: app:1
    volumeMounts:
    - {name: s, mountPath: /mnt/s, readOnly: true}
  volumes:
  - name: s
    csi:
      driver: secrets-store.csi.k8s.io
      readOnly: true
      volumeAttributes: {secretProviderClass: CLASS}
`

// TestErrors checks that malformed input is refused with a message naming
// the file, the document and the field or class.
func TestErrors(t *testing.T) {
	pod := func(class string) string { return strings.Replace(podUsing, "CLASS", class, 1) }
	tests := map[string]struct {
		input     string
		spc       string
		namespace string
		want      []string
	}{
		"not yaml":        {input: "a: [b\n", want: []string{"in.yaml: document 1 (line 1)", "not valid YAML"}},
		"scalar document": {input: "--- \njust text\n", want: []string{"in.yaml: document 1 (line 2)", "not a Kubernetes object"}},
		"content after the marker": {input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n--- !!map\napiVersion: v1\n",
			want: []string{"in.yaml: line 4: ", `"!!map" after the document marker "---"`}},
		"four dashes are content": {input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n----\n", want: []string{"in.yaml: document 1 (line 1)", "not valid YAML"}},
		"no kind":                 {input: "apiVersion: v1\nmetadata: {name: x}\n", want: []string{"document 1", "apiVersion and kind are required"}},
		"unknown field": {input: pod("vault-secrets") + "---\n" + strings.Replace(pod("vault-secrets"), "image: app:1", "image: app:1\n    imagePullPolcy: Always", 1),
			spc: vaultClass, want: []string{"in.yaml: document 2 (line 18) Pod p", `unknown field "spec.containers[0].imagePullPolcy"`}},
		"duplicate field": {input: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 1\n  replicas: 2\n",
			want: []string{"document 1 (line 1)", `line 6: key "replicas" already set`}},
		"wrong type": {input: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: two\n",
			want: []string{"Deployment d", "spec.replicas"}},
		"missing class": {input: pod("nope"), spc: vaultClass,
			want: []string{"document 1 (line 1) Pod p", `volume "s": SecretProviderClass "nope" not found in namespace "default"`}},
		"class in another namespace": {input: strings.Replace(vaultClass, "metadata:\n", "metadata:\n  namespace: other\n", 1) + "---\n" + pod("vault-secrets"),
			want: []string{"document 2", `SecretProviderClass "vault-secrets" not found in namespace "default"`}},
		"invalid class": {input: pod("vault-secrets"), spc: strings.Replace(vaultClass, "    roleName: app\n", "", 1),
			want: []string{"Pod p", "SecretProviderClass default/vault-secrets (provider vault): parameters.roleName"}},
		"invalid annotation": {input: strings.Replace(pod("vault-secrets"), "name: p\n", "name: p\n  annotations: {secrets-store-injector.io/mode: always}\n", 1), spc: vaultClass,
			want: []string{"Pod p", `annotation secrets-store-injector.io/mode: "always"`}},
		"namespace mismatch": {input: strings.Replace(pod("vault-secrets"), "name: p\n", "name: p\n  namespace: prod\n", 1), spc: vaultClass, namespace: "dev",
			want: []string{"Pod prod/p", `metadata.namespace "prod" does not match --namespace "dev"`}},
		"duplicate class": {input: vaultClass + "---\n" + vaultClass, want: []string{"document 2", "SecretProviderClass default/vault-secrets is given more than once"}},
		"not a class in --spc": {input: pod("vault-secrets"), spc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			want: []string{"spc.yaml: document 1", "--spc files hold SecretProviderClasses only"}},
		"deployment without template": {input: "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc}\nspec: {}\n",
			want: []string{"ReplicationController rc", "spec.template is required"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.yaml")
			if err := os.WriteFile(in, []byte(tc.input), 0o644); err != nil {
				t.Fatal(err)
			}
			opts := Options{Files: []string{in}, Namespace: tc.namespace, NamespaceLabels: enabled, Config: inject.DefaultConfig()}
			if tc.spc != "" {
				f := filepath.Join(dir, "spc.yaml")
				if err := os.WriteFile(f, []byte(tc.spc), 0o644); err != nil {
					t.Fatal(err)
				}
				opts.SPCFiles = []string{f}
			}
			var out, diag bytes.Buffer
			err := Run(opts, nil, &out, &diag)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if out.Len() > 0 {
				t.Errorf("partial output written on error")
			}
		})
	}
}

// TestSeparators: every document marker YAML reads as one separates
// documents, the comment after it included, and line numbers count from
// the stream's first line.
func TestSeparators(t *testing.T) {
	cm := func(name string) string { return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n" }
	in := "--- # first\n" + cm("a") + "---\t# tab, then a comment\n" + cm("b") + "--- \n" + cm("c") + "...\n" + cm("d") + "---\r\n" + strings.ReplaceAll(cm("e"), "\n", "\r\n")
	docs, err := split("in.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.where())
	}
	want := []string{"in.yaml: document 1 (line 2) ConfigMap a", "in.yaml: document 2 (line 7) ConfigMap b", "in.yaml: document 3 (line 12) ConfigMap c",
		"in.yaml: document 4 (line 17) ConfigMap d", "in.yaml: document 5 (line 22) ConfigMap e"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("documents\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStdinAndPassThrough reads standard input, keeps documents that are
// not workloads byte for byte (comments included) and keeps the order.
func TestStdinAndPassThrough(t *testing.T) {
	cm := "# settings, kept as written\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c   # trailing comment\ndata: {a: b}\n"
	in := cm + "---\n" + vaultClass + "---\n" + strings.Replace(podUsing, "CLASS", "vault-secrets", 1) + "---\n# only a comment\n"
	var out, diag bytes.Buffer
	err := Run(Options{Files: []string{"-"}, NamespaceLabels: enabled, Config: inject.DefaultConfig()}, strings.NewReader(in), &out, &diag)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := split("out", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3 (the comment-only one dropped)", len(docs))
	}
	if got := string(docs[0].raw) + "\n"; got != cm {
		t.Errorf("ConfigMap changed:\n%s", got)
	}
	if docs[1].meta.Kind != "SecretProviderClass" || docs[2].meta.Kind != "Pod" {
		t.Errorf("order: %s, %s", docs[1].meta.Kind, docs[2].meta.Kind)
	}
	if !strings.Contains(string(docs[2].raw), inject.AnnotationStatus+": injected") {
		t.Errorf("pod not injected:\n%s", docs[2].raw)
	}
	err = Run(Options{Files: []string{"-", "-"}, Config: inject.DefaultConfig()}, strings.NewReader(in), &out, &diag)
	if err == nil || !strings.Contains(err.Error(), "-f - given more than once") {
		t.Errorf("stdin twice: %v", err)
	}
}

func TestParseLabel(t *testing.T) {
	tests := map[string]struct {
		in, k, v string
		err      bool
	}{
		"ok":          {in: "secrets-store-injector.io/injection=enabled", k: "secrets-store-injector.io/injection", v: "enabled"},
		"empty value": {in: "team=", k: "team", v: ""},
		"no equals":   {in: "team", err: true},
		"bad key":     {in: "-x=y", err: true},
		"bad value":   {in: "a=b c", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k, v, err := ParseLabel(tc.in)
			if (err != nil) != tc.err || k != tc.k || v != tc.v {
				t.Errorf("ParseLabel(%q) = %q, %q, %v", tc.in, k, v, err)
			}
		})
	}
}
