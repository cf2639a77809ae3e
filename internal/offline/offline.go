// Package offline is `ssi-webhook inject`: it reads a YAML stream of pods and
// workloads, rewrites their pod templates with the same inject.Rewrite the
// admission webhook uses, and prints the stream. SecretProviderClasses,
// ServiceAccounts and Namespaces found in the stream (or in --spc files)
// stand in for what the webhook reads from the cluster.
package offline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
)

// Options are the command's flags.
type Options struct {
	// Files are the input streams; "-" is standard input.
	Files []string
	// SPCFiles hold SecretProviderClasses that are not printed.
	SPCFiles []string
	// Namespace is the namespace of objects that set none; when set, an
	// object naming another namespace is an error (as with kubectl -n).
	Namespace string
	// NamespaceLabels are labels of every namespace, on top of those of
	// Namespace objects in the stream.
	NamespaceLabels map[string]string
	// Config is the injection policy, the same flags as the webhook's.
	Config inject.Config
}

// ParseLabel parses one --namespace-label value "key=value".
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q is not key=value", s)
	}
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return "", "", fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return "", "", fmt.Errorf("label value %q: %s", v, strings.Join(errs, "; "))
	}
	return k, v, nil
}

// Run reads the inputs, rewrites and writes the stream to out; warnings
// and notes go to diag.
func Run(opts Options, stdin io.Reader, out, diag io.Writer) error {
	if len(opts.Files) == 0 {
		return errors.New("no input: pass -f FILE or -f - for standard input")
	}
	if err := opts.Config.Validate(); err != nil {
		return err
	}
	stdinUsed := false
	read := func(name string) ([]*doc, error) {
		if name == "-" {
			if stdinUsed {
				return nil, errors.New("-f - given more than once")
			}
			stdinUsed = true
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			return split("<stdin>", b)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return split(name, b)
	}
	var docs, spcDocs []*doc
	for _, f := range opts.Files {
		ds, err := read(f)
		if err != nil {
			return err
		}
		docs = append(docs, ds...)
	}
	for _, f := range opts.SPCFiles {
		ds, err := read(f)
		if err != nil {
			return err
		}
		spcDocs = append(spcDocs, ds...)
	}
	w := &world{opts: opts, classes: map[string]map[string]*ssiv1.SecretProviderClass{}, accounts: map[string]map[string]*metav1.ObjectMeta{}, labels: map[string]map[string]string{}}
	for _, d := range spcDocs {
		if err := w.learn(d, true); err != nil {
			return err
		}
	}
	for _, d := range docs {
		if err := w.learn(d, false); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	for i, d := range docs {
		b, err := w.process(d, diag)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	_, err := out.Write(buf.Bytes())
	return err
}
