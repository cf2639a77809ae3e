// Command ssi-webhook is the Secrets Store Injector admission webhook (and
// sync controller), and the offline `inject` tool.
//
//	ssi-webhook [serve] [flags]     admission server
//	ssi-webhook inject -f FILE ...  rewrite pods of a YAML stream offline
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ssi-webhook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd = args[0]
	}
	_ = ctx
	switch cmd {
	case "serve", "inject":
		return errors.New(cmd + ": not built yet in this revision")
	}
	return fmt.Errorf("unknown command %q (want serve or inject)", cmd)
}
