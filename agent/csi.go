package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
)

// runCSI is `ssi-agent csi`: flags to csi.Options, then csi.Run.
func runCSI(ctx context.Context, args []string) error {
	o, shared, err := csiOptions(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// The same built-in providers as `ssi-agent run` and `fetch`.
	o.Providers = builtin.New(o.Logger, builtin.OutsidePod, nodeIdleTimeout, o.Limits, shared)
	return csi.Run(ctx, o)
}

// csiOptions parses the flags of `ssi-agent csi`, and the operator's
// choices for its providers. Flag names follow the upstream driver's where
// one exists.
func csiOptions(args []string) (csi.Options, builtin.Shared, error) {
	fs := flag.NewFlagSet("ssi-agent csi", flag.ContinueOnError)
	var (
		o              csi.Options
		shared         builtin.Shared
		providerVolume string
		additional     string
		pluginRoutes   string
		backendHosts   []string
		jsonLogs       bool
		verbosity      int
	)
	fs.StringVar(&o.Endpoint, "endpoint", csi.DefaultEndpoint, "CSI endpoint, unix:///path/csi.sock")
	fs.StringVar(&o.NodeID, "nodeid", os.Getenv("SSI_NODE_NAME"), "node name (default $SSI_NODE_NAME)")
	fs.StringVar(&o.DriverName, "drivername", csi.DriverName, "CSI driver name")
	fs.StringVar(&o.KubeletRootDir, "kubelet-root-dir", csi.DefaultKubeletRootDir, "kubelet's --root-dir; targets must be inside it")
	fs.StringVar(&o.RegistrationDir, "plugins-registry-dir", "", `kubelet plugin registration directory (default <kubelet-root-dir>/plugins_registry; "-" to not register)`)
	fs.StringVar(&o.KubeletRegistrationPath, "kubelet-registration-path", "", "the CSI socket path as kubelet sees it (default: the endpoint's path)")
	fs.StringVar(&providerVolume, "provider-volume", "/var/run/secrets-store-csi-providers", "directory of provider plugin sockets")
	fs.StringVar(&additional, "additional-provider-volume-paths", "/etc/kubernetes/secrets-store-csi-providers", "comma-separated directories of provider plugin sockets, searched before --provider-volume")
	fs.StringVar(&pluginRoutes, "plugin-providers", "", "comma-separated provider names to serve through their plugin socket even when built in (e.g. aws)")
	fs.BoolVar(&o.EnableRotation, "enable-secret-rotation", true, "refresh mounted volumes when kubelet republishes them")
	fs.DurationVar(&o.RotationPollInterval, "rotation-poll-interval", csi.DefaultRotationPollInterval, "least time between two fetches of one volume")
	fs.DurationVar(&o.PluginTimeout, "plugin-timeout", 0, "timeout of one provider plugin call (default 60s)")
	fs.IntVar(&o.MaxCallRecvMsgSize, "max-call-recv-msg-size", 0, "largest provider plugin response in bytes (default 4 MiB)")
	o.Limits.AddFlags(fs)
	fs.BoolVar(&o.ServiceAccountAnnotations, "service-account-annotations", true, "read the pod's service account for cloud identity annotations (needs get on serviceaccounts)")
	fs.StringVar(&o.GCPWorkloadIdentityProvider, "gcp-workload-identity-provider", "", "GCP workload identity provider (or identitynamespace:<pool>:<provider>) the pods' tokens are exchanged at")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8095", `address of /metrics, /healthz and /readyz ("" disables)`)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration, then $KUBECONFIG)")
	shared.AddFlags(fs)
	provider.AddBackendHostsFlag(fs, &backendHosts)
	fs.BoolVar(&jsonLogs, "log-format-json", false, "log in JSON")
	fs.IntVar(&verbosity, "v", 0, "log verbosity; 4 or more logs every CSI call")
	err := fs.Parse(args)
	if err != nil {
		return o, shared, err
	}
	if fs.NArg() > 0 {
		return o, shared, fmt.Errorf("csi: unexpected arguments %q", fs.Args())
	}
	o.ProviderDirs = append(splitList(additional), splitList(providerVolume)...)
	o.PluginProviders = splitList(pluginRoutes)
	if o.AllowedBackendHosts, err = provider.ParseBackendHosts(backendHosts); err != nil {
		return o, shared, fmt.Errorf("--%s: %w", provider.FlagAllowedBackendHosts, err)
	}
	level := slog.LevelInfo
	if verbosity >= 4 {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	if jsonLogs {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	} else {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	}
	return o, shared, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
