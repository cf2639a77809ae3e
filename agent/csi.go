package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/logging"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
)

// runCSI is `ssi-agent csi`: flags to csi.Options, then csi.Run.
func runCSI(ctx context.Context, args []string) error {
	o, shared, err := csiOptions(args, os.Stderr)
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
// choices for its providers, and builds the logger writing to logOut. Flag
// names follow the upstream driver's where one exists, except for logging:
// --log-level and --log-format as in every command, with the upstream
// driver's -v and --log-format-json kept as deprecated aliases, because
// operators' DaemonSets may still pass them.
func csiOptions(args []string, logOut io.Writer) (csi.Options, builtin.Shared, error) {
	fs := flag.NewFlagSet("ssi-agent csi", flag.ContinueOnError)
	var (
		o              csi.Options
		shared         builtin.Shared
		providerVolume string
		additional     string
		pluginRoutes   string
		backendHosts   []string
		logLevel       = logging.LevelInfo
		logFormat      = logging.FormatText
		deprecated     []string
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
	logging.AddFlags(fs, &logLevel, &logFormat)
	// The deprecated aliases set the same variables: the last flag given wins.
	fs.Func("v", "deprecated, use --log-level: 4 or more is --log-level debug, less is info", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not an integer")
		}
		logLevel = logging.LevelInfo
		if n >= 4 {
			logLevel = logging.LevelDebug
		}
		deprecated = appendNew(deprecated, "-v")
		return nil
	})
	fs.BoolFunc("log-format-json", "deprecated, use --log-format: true is --log-format json, false text", func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean")
		}
		logFormat = logging.FormatText
		if b {
			logFormat = logging.FormatJSON
		}
		deprecated = appendNew(deprecated, "--log-format-json")
		return nil
	})
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
	if o.Logger, err = logging.New(logOut, logLevel, logFormat); err != nil {
		return o, shared, err
	}
	for _, f := range deprecated {
		o.Logger.Warn("deprecated flag: use --"+logging.FlagLevel+" and --"+logging.FlagFormat, "flag", f)
	}
	return o, shared, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
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
