package secretsync

import (
	"github.com/ssinjector/ssi/internal/limits"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
)

// RunOptions configure `ssi-webhook sync`, the controller's own process
// (its own Deployment and service account: the admission webhook holds no
// Secret or token rights).
type RunOptions struct {
	// Namespace is the controller's own namespace: the Lease of leader
	// election lives there, and it is protected unless allowed.
	Namespace string
	// LeaderElect elects one replica to sync (Lease LeaderElectionID).
	LeaderElect bool
	// RotationInterval is rotationPollInterval.
	RotationInterval time.Duration
	// AllowedBackendHosts are the entries of --allowed-backend-hosts
	// (ParseBackendHosts); none means no limit.
	AllowedBackendHosts []string
	// AllowProtectedNamespaces lets the controller sync in its own
	// namespace or kube-system (see ProtectedNamespaces).
	AllowProtectedNamespaces []string
	// APIServerAudiences are the API server's own audiences
	// (--api-server-audiences); nil means KubernetesAudiences.
	APIServerAudiences []string
	// TokenRequests are the audiences of the node shim's CSIDriver
	// tokenRequests (--token-request); see Options.TokenRequests.
	TokenRequests []string
	// Sizes caps each synced object and each class's objects together
	// (--max-object-bytes, --max-volume-bytes); zero fields take the
	// defaults of package limits.
	Sizes limits.Sizes
	// MetricsAddr serves /metrics ("0" disables); HealthAddr /healthz and
	// /readyz.
	MetricsAddr, HealthAddr string
	// Logger is the process logger.
	Logger logr.Logger
	// RESTConfig is the API server connection; nil reads the usual
	// kubeconfig / in-cluster configuration.
	RESTConfig *rest.Config
	// Providers returns the providers to fetch with, given the process
	// logger and the idle timeout of per-pod provider sessions (three
	// rotation intervals); main builds the built-in set for a process
	// that serves many pods (builtin.OutsidePod). The set is closed when
	// Run returns.
	Providers func(log *slog.Logger, idleTimeout time.Duration) provider.Set
	// ManagerOptions, when set, adjusts the manager options before the
	// manager is made (tests running several controllers in one process
	// skip the controller name check).
	ManagerOptions func(*manager.Options)
}

// Validate checks the options.
func (o *RunOptions) Validate() error {
	var errs []error
	if o.RotationInterval <= 0 {
		errs = append(errs, errors.New("--rotation-poll-interval must be positive"))
	}
	if o.Providers == nil {
		errs = append(errs, errors.New("sync controller: no providers"))
	}
	if o.LeaderElect && o.Namespace == "" {
		errs = append(errs, errors.New("--leader-elect needs --namespace (or $POD_NAMESPACE) for the Lease"))
	}
	if _, err := ParseBackendHostsFlag(o.AllowedBackendHosts); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseBackendHostsFlag parses --allowed-backend-hosts entries, naming the
// flag in the error.
func ParseBackendHostsFlag(entries []string) (*provider.BackendHosts, error) {
	b, err := provider.ParseBackendHosts(entries)
	if err != nil {
		return nil, fmt.Errorf("--allowed-backend-hosts: %w", err)
	}
	return b, nil
}

// Run runs the sync controller until ctx ends: a manager of its own with
// health and metrics endpoints, leader-elected, with the providers of
// RunOptions.Providers.
func Run(ctx context.Context, o RunOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	hosts, _ := ParseBackendHostsFlag(o.AllowedBackendHosts)
	cfg := o.RESTConfig
	if cfg == nil {
		var err error
		if cfg, err = config.GetConfig(); err != nil {
			return fmt.Errorf("kubernetes client configuration: %w", err)
		}
	}
	mo := manager.Options{
		Scheme:                        scheme.New(),
		Logger:                        o.Logger,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
	}
	if o.ManagerOptions != nil {
		o.ManagerOptions(&mo)
	}
	mgr, err := manager.New(cfg, mo)
	if err != nil {
		return fmt.Errorf("sync controller manager: %w", err)
	}
	// Per-pod Vault sessions end when their pods stop being synced.
	set := o.Providers(slog.New(logr.ToSlogHandler(mgr.GetLogger().WithName("sync-providers"))), 3*o.RotationInterval)
	defer func() { _ = set.Close() }()
	protected := ProtectedNamespaces(o.Namespace, o.AllowProtectedNamespaces)
	o.Logger.Info("sync controller", "rotationPollInterval", o.RotationInterval.String(), "leaderElect", o.LeaderElect,
		"protectedNamespaces", protected, "allowedBackendHosts", hosts.String())
	if _, err := Setup(mgr, Options{Providers: set, RotationInterval: o.RotationInterval,
		AllowedBackendHosts: hosts, ProtectedNamespaces: protected, APIServerAudiences: o.APIServerAudiences,
		TokenRequests: o.TokenRequests, Sizes: o.Sizes}); err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", func(_ *http.Request) error {
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(c) {
			return errors.New("informer caches are not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
