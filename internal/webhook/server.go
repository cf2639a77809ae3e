// Package webhook is the admission server of Secrets Store Injector: a
// controller-runtime manager serving the pod mutation endpoint over TLS
// (certificates reloaded on change), with health endpoints, Prometheus
// metrics, and informer caches of namespaces, SecretProviderClasses and
// service accounts. The rewrite itself is inject.Rewrite.
//
// The manager is the seam for the sync controller: Options.Setup functions
// (or New followed by Server.Manager) add further controllers to it.
package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/ssinjector/ssi/internal/logging"
	"github.com/ssinjector/ssi/internal/scheme"
)

// Server is the assembled admission server.
type Server struct {
	// Manager runs the webhook server, caches, health and metrics
	// endpoints; more controllers may be added before Start.
	Manager manager.Manager
	// Options are the options after defaulting (e.g. NativeSidecars
	// resolved into Options.Inject.NativeSidecars).
	Options Options
	// Injector is the pod defaulter.
	Injector *Injector
	// Certs serves the current certificate.
	Certs *certwatcher.CertWatcher
}

// Run serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	s, err := New(ctx, opts)
	if err != nil {
		return err
	}
	return s.Start(ctx)
}

// NewLogger returns the logger of the admission server and of the sync
// controller (logging.New, as a logr.Logger for controller-runtime: debug
// enables its V(1) to V(4)), writing to standard error.
func NewLogger(level, format string) (logr.Logger, error) {
	l, err := logging.New(os.Stderr, level, format)
	if err != nil {
		return logr.Logger{}, err
	}
	return logr.FromSlogHandler(l.Handler()), nil
}

// New builds the server without starting it.
func New(ctx context.Context, opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log, err := NewLogger(opts.LogLevel, opts.LogFormat)
	if err != nil {
		return nil, err
	}
	ctrllog.SetLogger(log)

	cfg := opts.RESTConfig
	if cfg == nil {
		if cfg, err = config.GetConfig(); err != nil {
			return nil, fmt.Errorf("kubernetes client configuration: %w", err)
		}
	}
	native, err := nativeSidecars(opts.NativeSidecars, cfg)
	if err != nil {
		return nil, err
	}
	opts.Inject.NativeSidecars = native
	if opts.Namespace != "" {
		opts.Inject.ExcludedNamespaces = append(opts.Inject.ExcludedNamespaces, opts.Namespace)
	}
	log.Info("injection policy", "nativeSidecars", native, "agentImage", opts.Inject.AgentImage,
		"rotationInterval", opts.Inject.RotationInterval.String(), "excludedNamespaces", opts.Inject.ExcludedNamespaces)

	certs, err := certwatcher.New(filepath.Join(opts.CertDir, opts.CertName), filepath.Join(opts.CertDir, opts.KeyName))
	if err != nil {
		return nil, fmt.Errorf("serving certificate in %s: %w", opts.CertDir, err)
	}
	certs = certs.WithWatchInterval(opts.CertWatchInterval)
	var clientCAs *ClientCA
	if opts.ClientCAFile != "" {
		if clientCAs, err = NewClientCA(opts.ClientCAFile, opts.CertWatchInterval, log.WithName("client-ca")); err != nil {
			return nil, err
		}
	}
	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.GetCertificate = certs.GetCertificate
		c.MinVersion = tls.VersionTLS12
		if !opts.EnableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
	if clientCAs != nil {
		tlsOpts = append(tlsOpts, clientCAs.Configure)
	}

	sch := scheme.New()
	mo := manager.Options{
		Scheme:                 sch,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress: opts.HealthAddr,
		WebhookServer:          crwebhook.NewServer(crwebhook.Options{Host: opts.Host, Port: opts.Port, TLSOpts: tlsOpts}),
		Cache:                  cache.Options{DefaultTransform: scheme.TrimForCache},
	}
	if opts.ManagerOptions != nil {
		opts.ManagerOptions(&mo)
	}
	mgr, err := manager.New(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if err := mgr.Add(certs); err != nil {
		return nil, err
	}
	if clientCAs != nil {
		if err := mgr.Add(clientCAs); err != nil {
			return nil, err
		}
	}
	for _, obj := range watchedObjects() {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	inj := &Injector{
		Config:        &opts.Inject,
		Lookup:        &CacheLookup{Cache: mgr.GetCache(), Live: mgr.GetAPIReader()},
		FailurePolicy: opts.FailurePolicy,
		Log:           log.WithName("admission"),
	}
	mgr.GetWebhookServer().Register(opts.Path, NewHandler(sch, inj, DefaultMetrics()))
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("caches", cacheSynced(mgr.GetCache())); err != nil {
		return nil, err
	}
	for _, setup := range opts.Setup {
		if err := setup(mgr); err != nil {
			return nil, err
		}
	}
	if opts.Ready != nil {
		opts.Ready(mgr)
	}
	return &Server{Manager: mgr, Options: opts, Injector: inj, Certs: certs}, nil
}

// Start runs the manager until ctx ends.
func (s *Server) Start(ctx context.Context) error { return s.Manager.Start(ctx) }

// cacheSynced is ready once every informer has synced.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(_ *http.Request) error {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errNotReady
		}
		return nil
	}
}

// nativeSidecars resolves auto from the API server version: native
// sidecars (init containers with restartPolicy Always) are on by default
// from Kubernetes 1.29.
func nativeSidecars(mode string, cfg *rest.Config) (bool, error) {
	switch mode {
	case NativeSidecarsOn:
		return true, nil
	case NativeSidecarsOff:
		return false, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("discovery client: %w", err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return false, fmt.Errorf("API server version (for --native-sidecars=auto; set true or false to skip): %w", err)
	}
	return SupportsNativeSidecars(v.Major, v.Minor)
}

// SupportsNativeSidecars reports whether a Kubernetes version (as the
// version endpoint spells it, e.g. "1", "29+") has native sidecars.
func SupportsNativeSidecars(major, minor string) (bool, error) {
	num := func(s string) (int, error) {
		return strconv.Atoi(strings.TrimRight(s, "+"))
	}
	ma, err := num(major)
	if err != nil {
		return false, fmt.Errorf("API server major version %q: %w", major, err)
	}
	mi, err := num(minor)
	if err != nil {
		return false, fmt.Errorf("API server minor version %q: %w", minor, err)
	}
	return ma > 1 || (ma == 1 && mi >= 29), nil
}
