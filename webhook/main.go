// Command ssi-webhook is the Secrets Store Injector admission webhook, the
// secret sync controller, and the offline `inject` tool.
//
//	ssi-webhook [serve] [flags]     admission server
//	ssi-webhook sync [flags]        sync controller (its own Deployment)
//	ssi-webhook inject -f FILE ...  rewrite pods of a YAML stream offline
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/offline"
	"github.com/ssinjector/ssi/internal/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ssi-webhook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		opts := webhook.DefaultOptions()
		fs := flag.NewFlagSet("ssi-webhook serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		opts.AddFlags(fs)
		movedSyncFlags(fs)
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
		}
		return webhook.Run(ctx, opts)
	case "sync":
		return syncCmd(ctx, args, stderr)
	case "inject":
		return injectCmd(args, stdin, stdout, stderr)
	case "help":
		_, err := fmt.Fprintln(stdout, "usage: ssi-webhook [serve] [flags] | ssi-webhook sync [flags] | ssi-webhook inject -f FILE|- [-f ...] [--spc FILE ...] [--namespace NS] [--namespace-label k=v ...]")
		return err
	}
	return fmt.Errorf("unknown command %q (want serve, sync or inject)", cmd)
}

func injectCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts := offline.Options{NamespaceLabels: map[string]string{}}
	fs := flag.NewFlagSet("ssi-webhook inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Func("f", "input file of YAML documents, - for standard input (repeatable)", func(s string) error {
		opts.Files = append(opts.Files, s)
		return nil
	})
	fs.Func("spc", "file of SecretProviderClasses to resolve against (repeatable; not printed)", func(s string) error {
		opts.SPCFiles = append(opts.SPCFiles, s)
		return nil
	})
	fs.StringVar(&opts.Namespace, "namespace", "", "namespace of objects that set none (objects naming another one are an error)")
	fs.Func("namespace-label", "label key=value of the namespaces, e.g. "+labelExample()+" (repeatable)", func(s string) error {
		k, v, err := offline.ParseLabel(s)
		if err != nil {
			return err
		}
		opts.NamespaceLabels[k] = v
		return nil
	})
	native := fs.Bool("native-sidecars", true, "inject the agent as a native sidecar (Kubernetes 1.29+); false gives an init container plus a regular sidecar")
	opts.Config = webhook.DefaultOptions().Inject
	opts.Config.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("inject: unexpected arguments %q (input files go after -f)", strings.Join(fs.Args(), " "))
	}
	opts.Config.NativeSidecars = *native
	return offline.Run(opts, stdin, stdout, stderr)
}

func labelExample() string { return inject.LabelInjection + "=" + inject.LabelValueEnabled }
