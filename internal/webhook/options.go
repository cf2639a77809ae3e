package webhook

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/logging"
)

// Native sidecar selection.
const (
	NativeSidecarsAuto = "auto"
	NativeSidecarsOn   = "true"
	NativeSidecarsOff  = "false"
)

// Options configure the admission server. main fills them from flags; tests
// and the demo fill them directly.
type Options struct {
	// Inject is the injection policy. Its NativeSidecars is decided from
	// NativeSidecars at start.
	Inject inject.Config
	// NativeSidecars is auto (from the API server version: 1.29 and
	// later), true or false.
	NativeSidecars string

	// Host and Port are where the webhook serves HTTPS.
	Host string
	Port int
	// CertDir holds CertName and KeyName; they are reloaded when they
	// change, without restart.
	CertDir, CertName, KeyName string
	// CertWatchInterval is how often the certificate files are re-read
	// besides file-change events.
	CertWatchInterval time.Duration
	// ClientCAFile, when set, makes the webhook port require a client
	// certificate signed by one of the PEM certificates in this file (the
	// API server's, configured through its admission kubeconfig); the
	// file is re-read every CertWatchInterval. Empty serves any client.
	ClientCAFile string
	// EnableHTTP2 serves HTTP/2; off by default (HTTP/2 rapid-reset
	// class of attacks), the API server talks HTTP/1.1 just as well.
	EnableHTTP2 bool
	// Path is the URL path of the pod mutation endpoint.
	Path string
	// MetricsAddr serves Prometheus metrics at /metrics ("0" disables).
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz.
	HealthAddr string
	// Namespace is the webhook's own namespace, which is never injected.
	Namespace string
	// FailurePolicy is the policy of the installed configuration; the
	// handler applies the same policy to its own internal errors (a cache
	// that cannot be read): Ignore admits the pod unchanged, Fail denies.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// LogLevel and LogFormat are the process's --log-level and
	// --log-format (logging.New).
	LogLevel, LogFormat string

	// RESTConfig is the API server connection; nil reads the usual
	// kubeconfig / in-cluster configuration.
	RESTConfig *rest.Config
	// ManagerOptions, when set, adjusts the manager options before the
	// manager is made (e.g. leader election for the sync controller).
	ManagerOptions func(*manager.Options)
	// Setup functions run after the webhook is registered and before the
	// manager starts: the seam where the sync controller adds itself to
	// the same manager.
	Setup []func(manager.Manager) error
	// Ready, when set, is called with the manager once it is set up,
	// before it starts (tests use it to reach the manager).
	Ready func(manager.Manager)
}

// DefaultOptions returns the defaults of the flags.
func DefaultOptions() Options {
	return Options{
		Inject:            inject.DefaultConfig(),
		NativeSidecars:    NativeSidecarsAuto,
		Port:              9443,
		CertDir:           "/etc/ssi-webhook/tls",
		CertName:          "tls.crt",
		KeyName:           "tls.key",
		CertWatchInterval: 10 * time.Second,
		Path:              DefaultPath,
		MetricsAddr:       ":8080",
		HealthAddr:        ":8081",
		Namespace:         ownNamespace(),
		FailurePolicy:     admissionregistrationv1.Ignore,
		LogLevel:          "info",
		LogFormat:         "json",
	}
}

// AddFlags registers the flags of `ssi-webhook serve`.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	o.Inject.AddFlags(fs)
	fs.StringVar(&o.NativeSidecars, "native-sidecars", o.NativeSidecars, "agent shape: auto (native sidecar from Kubernetes 1.29), true, or false (init container plus regular sidecar)")
	fs.StringVar(&o.Host, "host", o.Host, "address the webhook listens on (empty: all)")
	fs.IntVar(&o.Port, "port", o.Port, "HTTPS port of the webhook")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory holding the serving certificate and key (reloaded on change)")
	fs.StringVar(&o.CertName, "cert-name", o.CertName, "serving certificate file in --cert-dir")
	fs.StringVar(&o.KeyName, "key-name", o.KeyName, "serving key file in --cert-dir")
	fs.DurationVar(&o.CertWatchInterval, "cert-watch-interval", o.CertWatchInterval, "how often the certificate is re-read besides file events")
	fs.StringVar(&o.ClientCAFile, "client-ca", o.ClientCAFile, "PEM CA bundle: require client certificates signed by it on the webhook port (the API server's admission kubeconfig presents one); re-read every --cert-watch-interval; empty serves any client")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", o.EnableHTTP2, "serve HTTP/2 as well as HTTP/1.1")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the Prometheus /metrics endpoint (0 disables)")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "address of /healthz and /readyz")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the webhook's own namespace, never injected (default: $POD_NAMESPACE)")
	fs.Func("failure-policy", "Ignore or Fail: what the handler does when it cannot read its caches (match the MutatingWebhookConfiguration)", func(s string) error {
		p, err := ParseFailurePolicy(s)
		o.FailurePolicy = p
		return err
	})
	logging.AddFlags(fs, &o.LogLevel, &o.LogFormat)
}

// ParseFailurePolicy parses Ignore or Fail.
func ParseFailurePolicy(s string) (admissionregistrationv1.FailurePolicyType, error) {
	switch p := admissionregistrationv1.FailurePolicyType(s); p {
	case admissionregistrationv1.Ignore, admissionregistrationv1.Fail:
		return p, nil
	}
	return "", fmt.Errorf("failure policy %q is neither Ignore nor Fail", s)
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	switch o.NativeSidecars {
	case NativeSidecarsAuto, NativeSidecarsOn, NativeSidecarsOff:
	default:
		errs = append(errs, fmt.Errorf("--native-sidecars %q is not auto, true or false", o.NativeSidecars))
	}
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d is not a port", o.Port))
	}
	if !strings.HasPrefix(o.Path, "/") {
		errs = append(errs, fmt.Errorf("path %q must start with /", o.Path))
	}
	if _, err := ParseFailurePolicy(string(o.FailurePolicy)); err != nil {
		errs = append(errs, err)
	}
	if o.CertWatchInterval <= 0 {
		errs = append(errs, errors.New("--cert-watch-interval must be positive"))
	}
	// Empty is logging.New's default (info, text).
	if _, err := logging.ParseLevel(o.LogLevel); err != nil && o.LogLevel != "" {
		errs = append(errs, fmt.Errorf("--%s: %w", logging.FlagLevel, err))
	}
	if _, err := logging.ParseFormat(o.LogFormat); err != nil && o.LogFormat != "" {
		errs = append(errs, fmt.Errorf("--%s: %w", logging.FlagFormat, err))
	}
	if err := o.Inject.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ownNamespace is $POD_NAMESPACE (downward API), else the namespace of the
// mounted service account, else empty.
func ownNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}
