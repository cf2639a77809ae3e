// Package chart renders the Helm chart charts/secrets-store-injector with
// the pinned Helm binary the Makefile builds, and splits the result into
// objects. hack/render uses it to write manifests/, the chart tests to lint,
// render and dry-run the chart against a real API server.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/yamlstream"
)

// Path is the chart's directory relative to the repository root.
const Path = "charts/secrets-store-injector"

// Defaults of the rendered manifests for kubectl users (manifests/).
const (
	DefaultRelease   = "secrets-store-injector"
	DefaultNamespace = "secrets-store-injector"
	// MinKubeVersion is the oldest Kubernetes the chart supports
	// (Chart.yaml kubeVersion); manifests/ is rendered for it, so that
	// fields of newer versions do not break older clusters.
	MinKubeVersion = "1.30.0"
)

// HelmBinary finds the pinned Helm: $HELM when set, else
// <root>/bin/helm-<HELM_VERSION of the Makefile>.
func HelmBinary(root string) (string, error) {
	if h := os.Getenv("HELM"); h != "" {
		return h, nil
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("read the Makefile for HELM_VERSION: %w", err)
	}
	m := regexp.MustCompile(`(?m)^HELM_VERSION\s*:=\s*(\S+)`).FindSubmatch(mk)
	if m == nil {
		return "", errors.New("the Makefile sets no HELM_VERSION")
	}
	bin := os.Getenv("KUBEBUILDER_ASSETS")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	p := filepath.Join(bin, "helm-"+string(m[1]))
	if _, err := os.Stat(p); err != nil { //nolint:gosec // the path is built from the Makefile's pin
		return "", fmt.Errorf("helm %s not found (run `make test` or `make %s` to build it): %w", m[1], p, err)
	}
	return p, nil
}

// Options are the inputs of one `helm template`.
type Options struct {
	// Release and Namespace name the release; the defaults above when
	// empty.
	Release, Namespace string
	// KubeVersion is the Kubernetes version templates see
	// (.Capabilities.KubeVersion); MinKubeVersion when empty (a Helm built
	// with `go install` defaults to v1.20.0, below the chart's minimum).
	KubeVersion string
	// Set are --set key=value pairs, in order.
	Set []string
	// Values are YAML values files' contents, applied before Set.
	Values []string
}

// Runner runs the Helm binary on the chart.
type Runner struct {
	// Helm is the helm binary; Chart the chart directory.
	Helm, Chart string
}

// Template renders the chart and returns the YAML stream.
func (r Runner) Template(ctx context.Context, o Options) ([]byte, error) {
	if o.Release == "" {
		o.Release = DefaultRelease
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.KubeVersion == "" {
		o.KubeVersion = MinKubeVersion
	}
	args := []string{"template", o.Release, r.Chart, "--namespace", o.Namespace, "--kube-version", o.KubeVersion}
	files, cleanup, err := valuesFiles(o.Values)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	for _, f := range files {
		args = append(args, "--values", f)
	}
	for _, s := range o.Set {
		args = append(args, "--set", s)
	}
	return r.run(ctx, args...)
}

// Lint runs `helm lint --strict` with the given options' values and
// returns its output.
func (r Runner) Lint(ctx context.Context, o Options) ([]byte, error) {
	files, cleanup, err := valuesFiles(o.Values)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if o.KubeVersion == "" {
		o.KubeVersion = MinKubeVersion
	}
	args := []string{"lint", "--strict", r.Chart, "--kube-version", o.KubeVersion}
	if o.Namespace != "" {
		args = append(args, "--namespace", o.Namespace)
	}
	for _, f := range files {
		args = append(args, "--values", f)
	}
	for _, s := range o.Set {
		args = append(args, "--set", s)
	}
	return r.run(ctx, args...)
}

// Run runs helm with arguments, e.g. install or upgrade with --kubeconfig,
// in a clean Helm home.
func (r Runner) Run(ctx context.Context, args ...string) ([]byte, error) { return r.run(ctx, args...) }

func (r Runner) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.Helm, args...) //nolint:gosec // runs the pinned helm on arguments built here
	// A clean Helm home: no repositories, plugins or caches of the user.
	home, err := os.MkdirTemp("", "ssi-helm-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(home) }()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w: %s%s", args[0], err, strings.TrimSpace(stderr.String()), tail(stdout.String()))
	}
	return stdout.Bytes(), nil
}

// tail keeps the end of helm's standard output for error messages (lint
// prints its findings there).
func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return "\n" + s
}

func valuesFiles(values []string) ([]string, func(), error) {
	if len(values) == 0 {
		return nil, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "ssi-values-")
	if err != nil {
		return nil, nil, err
	}
	var files []string
	for i, v := range values {
		f := filepath.Join(dir, fmt.Sprintf("values-%d.yaml", i))
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, err
		}
		files = append(files, f)
	}
	return files, func() { _ = os.RemoveAll(dir) }, nil
}

// Split decodes a YAML stream into objects (documents as yamlstream.Split
// cuts them), skipping empty documents.
func Split(stream []byte) ([]*unstructured.Unstructured, error) {
	docs, err := yamlstream.Split(stream)
	if err != nil {
		return nil, fmt.Errorf("rendered stream: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, d := range docs {
		j, err := yaml.YAMLToJSON(d.Text)
		if err != nil {
			return nil, fmt.Errorf("decode rendered document at line %d: %w\n%s", d.Line, err, d.Text)
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		// UnmarshalJSON keeps integers as int64 (not float64).
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("rendered document at line %d without apiVersion or kind: %w\n%s", d.Line, err, d.Text)
		}
		out = append(out, u)
	}
	return out, nil
}

// Find returns the objects of a kind, sorted by namespace and name.
func Find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

// Get returns the object of a kind and name, or nil.
func Get(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ManifestsFile is the rendered chart inside manifests/.
const ManifestsFile = "secrets-store-injector.yaml"

// ManifestsSet are the values manifests/ is rendered with, besides the
// chart's defaults: webhook.tls.mode=cert-manager, because the default mode
// (helm) generates a CA and key at every render, so a committed rendering
// would either change on every `make manifests` or hand every user the same
// private key; crds.install=false, because the CRDs are in manifests/crds.
var ManifestsSet = []string{"webhook.tls.mode=cert-manager", "crds.install=false"}

// Manifests renders the chart as manifests/ holds it for kubectl users: a
// header, the installation's Namespace, then the chart rendered with
// ManifestsSet for MinKubeVersion in DefaultNamespace.
func (r Runner) Manifests(ctx context.Context) ([]byte, error) {
	y, err := r.Template(ctx, Options{Namespace: DefaultNamespace, KubeVersion: MinKubeVersion, Set: ManifestsSet})
	if err != nil {
		return nil, err
	}
	if _, err := Split(y); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by `make manifests` (hack/render: helm template of %s with --set %s,\n", Path, strings.Join(ManifestsSet, " --set "))
	fmt.Fprintf(&b, "# for Kubernetes %s and later); do not edit. Needs cert-manager; without it, install\n", MinKubeVersion)
	b.WriteString("# with Helm, or render with `go run ./hack/render --out -` (see README.md).\n")
	b.WriteString("# Apply manifests/crds/ first.\n")
	b.WriteString(NamespaceYAML(DefaultNamespace))
	b.Write(bytes.TrimLeft(y, "\n"))
	return b.Bytes(), nil
}

// NamespaceYAML is the installation's namespace. The node shim is
// privileged, so Pod Security must admit privileged pods there; the webhook
// never injects pods of its own namespace.
func NamespaceYAML(name string) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    app.kubernetes.io/name: secrets-store-injector
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: privileged
`, name)
}
