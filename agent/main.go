// Command ssi-agent fetches secrets into a pod's in-memory volume and rotates
// them (run), does the same locally (fetch), or serves the node CSI shim (csi).
//
//	ssi-agent run                               in-pod agent, configured by the webhook
//	ssi-agent fetch --spc FILE --out DIR ...    local mode
//	ssi-agent csi --endpoint unix:///csi.sock   node CSI shim
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
		fmt.Fprintln(os.Stderr, "ssi-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: ssi-agent run | fetch | csi")
	}
	switch args[0] {
	case "run":
		return runAgent(ctx, args[1:])
	case "fetch":
		return runFetch(ctx, args[1:])
	case "csi":
		return runCSI(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q (want run, fetch or csi)", args[0])
}
