// Command demo is `make demo`: the whole product flow on this machine, on
// embedded defaults, with progress output.
//
// It starts a kube-apiserver and etcd (internal/testing/testenv) with the CRDs and a
// Vault dev server, configures Vault as the seed guide does, runs the built
// ssi-webhook under the RBAC of manifests/secrets-store-injector.yaml behind
// that file's MutatingWebhookConfiguration, applies the seed guide's Vault
// SecretProviderClass and Deployment, creates the Deployment's pod (there is
// no controller-manager), prints the rewritten pod, then runs the built
// ssi-agent exactly as that pod's agent container would, shows the files,
// changes the secret in Vault and shows the rotated file. Everything it
// started is stopped at the end, on failure and on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	opts := DefaultOptions()
	flag.StringVar(&opts.WebhookBin, "webhook", opts.WebhookBin, "ssi-webhook binary")
	flag.StringVar(&opts.AgentBin, "agent", opts.AgentBin, "ssi-agent binary")
	flag.BoolVar(&opts.Verbose, "v", false, "print the webhook's and the agent's logs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Out = os.Stdout
	if _, err := Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
