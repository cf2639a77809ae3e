package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
)

// runAgent is `ssi-agent run`. Its configuration comes from the environment
// the webhook set (SSI_AGENT_CONFIG and the SSI_POD_* variables); the flags
// only exist for debugging a pod by hand.
//
// The agent makes itself non-dumpable before anything else, so that app
// containers sharing the pod's process namespace with the agent's user
// cannot read its environment, memory or files through /proc.
func runAgent(ctx context.Context, args []string) error {
	if err := agent.DisableDumping(); err != nil {
		return err
	}
	fs := flag.NewFlagSet("ssi-agent run", flag.ContinueOnError)
	opts := agent.Options{NewProviders: func(log *slog.Logger) provider.Set {
		return builtin.New(log, builtin.InPod, 0, limits.Config{}, builtin.Shared{})
	}}
	fs.StringVar(&opts.TerminationLog, "termination-log", agent.DefaultTerminationLog, `file for the termination message ("-" for none)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return agent.Run(ctx, opts)
}
