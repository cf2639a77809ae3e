package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/logging"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	"github.com/ssinjector/ssi/internal/secretsync"
	"github.com/ssinjector/ssi/internal/webhook"
)

// syncCmd is `ssi-webhook sync`: the secret sync controller as a process
// of its own (Helm syncSecret.enabled: its own Deployment and service
// account), so that the admission server holds no Secret or token rights.
func syncCmd(ctx context.Context, args []string, stderr io.Writer) error {
	defaults := webhook.DefaultOptions()
	o := secretsync.RunOptions{
		Namespace:        defaults.Namespace,
		LeaderElect:      true,
		RotationInterval: secretsync.DefaultRotationInterval,
		MetricsAddr:      defaults.MetricsAddr,
		HealthAddr:       defaults.HealthAddr,
	}
	logLevel, logFormat := defaults.LogLevel, defaults.LogFormat
	fs := flag.NewFlagSet("ssi-webhook sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.RotationInterval, "rotation-poll-interval", o.RotationInterval, "time between fetches of a synced class (rotationPollInterval)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "elect one replica to sync (Lease "+secretsync.LeaderElectionID+" in --namespace)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the controller's own namespace: its Lease, and protected unless allowed (default: $POD_NAMESPACE)")
	provider.AddBackendHostsFlag(fs, &o.AllowedBackendHosts)
	fs.Func("allow-protected-namespace", "let the controller sync in --namespace or kube-system, which it otherwise refuses (repeatable)", func(s string) error {
		o.AllowProtectedNamespaces = append(o.AllowProtectedNamespaces, strings.TrimSpace(s))
		return nil
	})
	fs.Func("api-server-audiences", "comma-separated audiences of the API server (its service-account issuer), for which no pod-less token is minted besides the default audience (default "+strings.Join(secretsync.KubernetesAudiences, ",")+")", func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.APIServerAudiences = append(o.APIServerAudiences, a)
			}
		}
		return nil
	})
	identity.AddTokenRequestFlag(fs, &o.TokenRequests)
	var pf providerFlags
	pf.addFlags(fs)
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the Prometheus /metrics endpoint (0 disables)")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "address of /healthz and /readyz")
	logging.AddFlags(fs, &logLevel, &logFormat)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sync: unexpected arguments %q", fs.Args())
	}
	sizes, err := pf.limits.Complete()
	if err != nil {
		return fmt.Errorf("--max-object-bytes, --max-volume-bytes: %w", err)
	}
	o.Sizes = sizes
	if o.Logger, err = webhook.NewLogger(logLevel, logFormat); err != nil {
		return err
	}
	o.Providers = func(log *slog.Logger, idle time.Duration) provider.Set {
		// One process fetches for the pods of every namespace.
		return builtin.New(log, builtin.OutsidePod, idle, pf.limits, pf.shared)
	}
	return secretsync.Run(ctx, o)
}

// providerFlags configure the sync controller's providers, which fetch for
// every namespace (a shared process, like the node shim): the size caps,
// the class files directory and whether the process may lend its own cloud
// identity.
type providerFlags struct {
	limits limits.Config
	shared builtin.Shared
}

func (p *providerFlags) addFlags(fs *flag.FlagSet) {
	p.limits.AddFlags(fs)
	p.shared.AddFlags(fs)
}

// movedSyncFlags are the flags the sync controller had when it ran inside
// the admission server; `serve` refuses them with the way forward rather
// than running without the controller the operator asked for.
func movedSyncFlags(fs *flag.FlagSet) {
	for _, name := range []string{"sync-secrets", "rotation-poll-interval", "leader-elect"} {
		fs.Func(name, "moved to `ssi-webhook sync`", func(string) error {
			return fmt.Errorf("the sync controller runs as `ssi-webhook sync` (its own Deployment and service account); --%s is a flag of that command", name)
		})
	}
}
