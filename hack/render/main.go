// Command render renders the Helm chart for kubectl users. `make manifests`
// runs it to write manifests/secrets-store-injector.yaml (chart.Manifests:
// the chart's defaults but for chart.ManifestsSet, so that the committed
// file is deterministic and holds no private key).
//
// With --out - it writes to standard output the chart rendered with its own
// defaults (a fresh CA and serving certificate, no cert-manager needed)
// plus any --set pairs, preceded by the Namespace:
//
//	go run ./hack/render --out - | kubectl apply -f -
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssinjector/ssi/internal/chart"
)

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	helm := fs.String("helm", "", "helm binary (default: the Makefile's pinned bin/helm-<version>)")
	chartDir := fs.String("chart", chart.Path, "chart directory")
	out := fs.String("out", "manifests", `directory to write `+chart.ManifestsFile+` into, or "-" for standard output`)
	ns := fs.String("namespace", chart.DefaultNamespace, "namespace of the installation (--out - only)")
	kube := fs.String("kube-version", chart.MinKubeVersion, "Kubernetes version to render for (--out - only)")
	var sets setFlags
	fs.Var(&sets, "set", "helm --set key=value (repeatable; --out - only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *helm == "" {
		root, err := os.Getwd()
		if err != nil {
			return err
		}
		if *helm, err = chart.HelmBinary(root); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := chart.Runner{Helm: *helm, Chart: *chartDir}
	if *out != "-" {
		if len(sets) > 0 || *ns != chart.DefaultNamespace || *kube != chart.MinKubeVersion {
			return fmt.Errorf("--set, --namespace and --kube-version are for --out -: manifests/ is rendered with fixed values")
		}
		b, err := r.Manifests(ctx)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*out, chart.ManifestsFile), b, 0o644)
	}
	y, err := r.Template(ctx, chart.Options{Namespace: *ns, KubeVersion: *kube, Set: sets})
	if err != nil {
		return err
	}
	if _, err := chart.Split(y); err != nil {
		return err
	}
	_, err = os.Stdout.Write(append([]byte(chart.NamespaceYAML(*ns)), bytes.TrimLeft(y, "\n")...))
	return err
}
