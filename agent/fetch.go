package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/logging"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
)

// runFetch is `ssi-agent fetch --spc FILE --out DIR [--token-file PATH]
// [--node-publish-secret-dir DIR] [--watch [--interval D]]`.
func runFetch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ssi-agent fetch", flag.ContinueOnError)
	opts := agent.FetchOptions{NewProviders: func(log *slog.Logger) provider.Set {
		return builtin.New(log, builtin.Local, 0, limits.Config{}, builtin.Shared{})
	}}
	fs.StringVar(&opts.SPCFile, "spc", "", "YAML file holding the SecretProviderClass (required)")
	fs.StringVar(&opts.OutDir, "out", "", "directory to write the files to, laid out as in the pod (required)")
	fs.StringVar(&opts.TokenFile, "token-file", "", "service-account token given to the provider for every audience it asks for; ambient credentials otherwise")
	fs.StringVar(&opts.NodePublishSecretDir, "node-publish-secret-dir", "", "directory with one file per key of the volume's nodePublishSecretRef Secret (Azure clientid and clientsecret, GCP key.json), read at every fetch")
	fs.BoolVar(&opts.Watch, "watch", false, "keep rotating every --interval until interrupted")
	fs.DurationVar(&opts.Interval, "interval", agent.DefaultWatchInterval, "rotation interval with --watch")
	fs.DurationVar(&opts.Timeout, "timeout", agent.DefaultFirstFetchTimeout, "deadline of the first fetch, retries included")
	opts.LogLevel, opts.LogFormat = logging.LevelInfo, logging.FormatText
	logging.AddFlags(fs, &opts.LogLevel, &opts.LogFormat)
	fs.StringVar(&opts.HealthAddr, "health-addr", "", "serve /healthz, /readyz and /metrics here (off when empty)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fetch: unexpected arguments %q", fs.Args())
	}
	if opts.SPCFile == "" || opts.OutDir == "" {
		fs.Usage()
		return fmt.Errorf("fetch: --spc and --out are required")
	}
	return agent.Fetch(ctx, opts)
}
