// Command syncrbac writes the sync controller's access objects
// (internal/secretsync.RBAC) as YAML; `make manifests` runs it into
// manifests/sync/rbac.yaml.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ssinjector/ssi/internal/secretsync"
)

func main() {
	var o secretsync.RBACOptions
	out := flag.String("out", "manifests/sync/rbac.yaml", "file to write")
	flag.StringVar(&o.Namespace, "namespace", secretsync.DefaultNamespace, "namespace of the webhook Deployment")
	flag.StringVar(&o.ServiceAccount, "service-account", secretsync.DefaultServiceAccount, "service account of the webhook Deployment")
	flag.Func("api-server-audience", "an audience of the API server, which no pod-less token may name (repeatable; default: internal/secretsync.KubernetesAudiences)", func(s string) error {
		o.APIServerAudiences = append(o.APIServerAudiences, s)
		return nil
	})
	flag.Parse()
	b, err := secretsync.RBACYAML(o)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(*out), 0o755)
	}
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncrbac:", err)
		os.Exit(1)
	}
}
