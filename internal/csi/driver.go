// Package csi is the node CSI shim: a CSI node plugin registered under the
// standard driver name secrets-store.csi.k8s.io, so that pods the webhook
// did not rewrite still get their secrets volume, fetched by the same
// provider code and written by the same atomic writer as the in-pod agent.
//
// NodePublishVolume mounts a tmpfs at the target, reads the pod's
// SecretProviderClass from the pod's own namespace (through an informer
// cache), fetches with the service-account tokens kubelet passed, writes
// kubelet-style, and records a SecretProviderClassPodStatus owned by the
// pod. Kubelet calls NodePublishVolume again periodically because the
// CSIDriver sets requiresRepublish; inside the rotation poll interval such a
// republish is a memory-only no-op, after it a version-aware refresh that
// never unmounts or empties the volume when it fails.
//
// Providers that are not built in (or that the operator routes there) are
// reached over the upstream v1alpha1 provider protocol (package
// internal/provider/plugin).
//
// The shim registers itself with kubelet through the plugin registration
// socket in <kubelet root>/plugins_registry; no node-driver-registrar is
// needed.
package csi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
)

// DriverName is the CSI driver name of the upstream Secrets Store CSI
// Driver, which pods' csi volumes reference.
const DriverName = inject.CSIDriver

// Defaults of Options.
const (
	DefaultKubeletRootDir       = "/var/lib/kubelet"
	DefaultRotationPollInterval = 2 * time.Minute
	DefaultEndpoint             = "unix:///var/lib/kubelet/plugins/secrets-store.csi.k8s.io/csi.sock"
)

// Options configure the shim; the flags of `ssi-agent csi` map onto them.
type Options struct {
	// DriverName is registered with kubelet; DriverName by default.
	DriverName string
	// Endpoint is the CSI socket, "unix:///path" (or a plain path).
	Endpoint string
	// NodeID is the node's name; it is NodeGetInfo's node id and labels
	// the SecretProviderClassPodStatus objects.
	NodeID string
	// KubeletRootDir is kubelet's --root-dir; every target path must be
	// inside it.
	KubeletRootDir string
	// RegistrationDir is where the registration socket is created;
	// "<KubeletRootDir>/plugins_registry" when empty, "-" to not register.
	RegistrationDir string
	// KubeletRegistrationPath is the CSI socket path as kubelet sees it;
	// the path of Endpoint when empty.
	KubeletRegistrationPath string
	// ProviderDirs are searched in order for "<provider>.sock";
	// plugin.DefaultDirs when empty.
	ProviderDirs []string
	// PluginProviders are provider names served by a plugin even though a
	// built-in provider of that name exists.
	PluginProviders []string
	// EnableRotation makes republishes refresh the volume; when false a
	// mounted volume is never fetched again.
	EnableRotation bool
	// RotationPollInterval is the least time between two fetches of one
	// volume; DefaultRotationPollInterval when zero.
	RotationPollInterval time.Duration
	// PluginTimeout bounds one call to a provider plugin.
	PluginTimeout time.Duration
	// MaxCallRecvMsgSize is the largest plugin response accepted, in bytes.
	MaxCallRecvMsgSize int
	// Limits cap each object and volume (the files the shim writes; the
	// tmpfs of a volume is sized from them) and name the directory of
	// class files, which agent/csi.go hands to the built-in providers. The
	// zero value means the default caps and no class files.
	Limits limits.Config
	// AllowedBackendHosts limits the backend addresses a class may name
	// (--allowed-backend-hosts, Helm linux.allowedBackendHosts): a class
	// whose vaultAddress names another host is refused before any fetch,
	// so neither the pod's tokens nor the shim's requests reach it. Nil
	// allows every host. Classes served through a provider plugin are the
	// plugin's to check: the plugin, not the shim, contacts their backend.
	AllowedBackendHosts *provider.BackendHosts
	// ServiceAccountAnnotations lets the shim read what identity.Decide
	// decides a volume's identity from: the pod's service account's
	// annotations (IRSA role, GCP service account, Azure client id), and
	// for GCP classes the pod's gcp-workload-identity-provider
	// annotation; needs get on serviceaccounts and pods.
	ServiceAccountAnnotations bool
	// GCPWorkloadIdentityProvider is the cluster's workload identity
	// provider (or GKE identity namespace audience) for "auth: pod-adc"
	// classes of pods whose annotation names none: the shim's own
	// credentials are the node's, so such classes federate the pod's
	// token there (identity.Defaults). Add the matching token audience to
	// the CSIDriver's tokenRequests.
	GCPWorkloadIdentityProvider string
	// MetricsAddr serves /metrics, /healthz and /readyz; empty disables.
	MetricsAddr string
	// Kubeconfig is a kubeconfig file; in-cluster configuration when empty.
	Kubeconfig string
	// Config, when set, is the API server connection and Kubeconfig is
	// ignored (embedding and tests).
	Config *rest.Config
	// Providers are the built-in providers, the same set the agent uses.
	Providers provider.Set
	// Version is reported by GetPluginInfo; the module version when empty.
	Version string
	// Logger receives the shim's logs; never secret values.
	Logger *slog.Logger
}

// complete fills defaults and checks what NewDriver needs.
func (o Options) complete() (Options, error) {
	if o.DriverName == "" {
		o.DriverName = DriverName
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	if o.KubeletRootDir == "" {
		o.KubeletRootDir = DefaultKubeletRootDir
	}
	if !filepath.IsAbs(o.KubeletRootDir) {
		return o, fmt.Errorf("kubelet root dir %q is not absolute", o.KubeletRootDir)
	}
	o.KubeletRootDir = filepath.Clean(o.KubeletRootDir)
	if o.RegistrationDir == "" {
		o.RegistrationDir = filepath.Join(o.KubeletRootDir, "plugins_registry")
	}
	if o.KubeletRegistrationPath == "" {
		p, err := socketPath(o.Endpoint)
		if err != nil {
			return o, err
		}
		o.KubeletRegistrationPath = p
	}
	if len(o.ProviderDirs) == 0 {
		o.ProviderDirs = plugin.DefaultDirs
	}
	if o.RotationPollInterval <= 0 {
		o.RotationPollInterval = DefaultRotationPollInterval
	}
	if o.NodeID == "" {
		return o, fmt.Errorf("node id is required (--nodeid, usually the node name from the downward API)")
	}
	for _, p := range o.PluginProviders {
		if !spc.ValidProviderName(p) {
			return o, fmt.Errorf("plugin provider %q is not a valid provider name", p)
		}
	}
	var err error
	if o.Limits.Sizes, err = o.Limits.Complete(); err != nil {
		return o, err
	}
	if o.Version == "" {
		o.Version = moduleVersion()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "0.0.0-dev"
}

// socketPath returns the file of a unix endpoint: "unix:///p", "unix:/p"
// or "/p".
func socketPath(endpoint string) (string, error) {
	p := endpoint
	switch {
	case strings.HasPrefix(p, "unix://"):
		p = strings.TrimPrefix(p, "unix://")
	case strings.HasPrefix(p, "unix:"):
		p = strings.TrimPrefix(p, "unix:")
	case strings.Contains(p, "://"):
		return "", fmt.Errorf("endpoint %q: only unix sockets are supported", endpoint)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("endpoint %q: the socket path must be absolute", endpoint)
	}
	return filepath.Clean(p), nil
}

// StatusRecorder records SecretProviderClassPodStatus objects; Record
// replaces what is pending for the same object, Drop forgets it.
type StatusRecorder interface {
	Record(st *ssiv1.SecretProviderClassPodStatus)
	Drop(namespace, name string)
}

// Deps are the I/O dependencies of a Driver, injected so tests substitute
// them.
type Deps struct {
	// Mounter mounts tmpfs at targets; SystemMounter in production.
	Mounter Mounter
	// Classes reads SecretProviderClasses; an informer cache in production.
	Classes client.Reader
	// APIReader reads from the API server directly: a class the cache has
	// not seen yet, and service accounts. Optional.
	APIReader client.Reader
	// Tokens creates service-account tokens with the TokenRequest API
	// (create on serviceaccounts/token) for a Vault class whose audience
	// kubelet sent no token for, as vault-csi-provider does
	// (vaultTokens). Optional: without it such a volume fails.
	Tokens client.SubResourceClientConstructor
	// Status records SecretProviderClassPodStatus objects. Optional.
	Status StatusRecorder
	// Events records events on pods. Optional.
	Events record.EventRecorder
	// Clock decides when a republish is due and times publishes; nil is
	// the real clock.
	Clock clock.WithTicker
	// Registerer receives the shim's metrics. Optional.
	Registerer prometheus.Registerer
}

// Driver implements the CSI Identity and Node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer

	opts Options
	deps Deps
	log  *slog.Logger
	// realRoot is the kubelet root dir with symbolic links resolved.
	realRoot string
	metrics  *metrics
	routed   map[string]bool

	ready    atomic.Bool
	rejected atomic.Value // string: why kubelet rejected the registration

	locks keyedMutex

	mu      sync.Mutex
	vols    map[string]*published
	plugins map[string]*plugin.Client
	sas     map[string]metaEntry
}

// NewDriver returns a driver; it is not ready (Probe) until SetReady.
func NewDriver(opts Options, deps Deps) (*Driver, error) {
	opts, err := opts.complete()
	if err != nil {
		return nil, err
	}
	if deps.Mounter == nil {
		return nil, fmt.Errorf("a mounter is required")
	}
	if deps.Classes == nil {
		return nil, fmt.Errorf("a SecretProviderClass reader is required")
	}
	deps.Clock = schedule.Clock(deps.Clock)
	if opts.Providers == nil {
		opts.Providers = provider.Set{}
	}
	d := &Driver{
		opts:    opts,
		deps:    deps,
		log:     opts.Logger,
		routed:  map[string]bool{},
		vols:    map[string]*published{},
		plugins: map[string]*plugin.Client{},
		sas:     map[string]metaEntry{},
	}
	for _, p := range opts.PluginProviders {
		d.routed[p] = true
	}
	d.realRoot = opts.KubeletRootDir
	if r, err := filepath.EvalSymlinks(opts.KubeletRootDir); err == nil {
		d.realRoot = r
	}
	d.metrics = newMetrics(deps.Registerer, func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(len(d.vols))
	})
	return d, nil
}

// SetReady marks the driver ready for Probe (the class cache has synced).
func (d *Driver) SetReady() { d.ready.Store(true) }

// Close drops plugin connections.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.plugins {
		_ = c.Close()
	}
	d.plugins = map[string]*plugin.Client{}
	return nil
}

// GetPluginInfo implements csi.IdentityServer.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.opts.DriverName, VendorVersion: d.opts.Version}, nil
}

// GetPluginCapabilities implements csi.IdentityServer: a node-only plugin
// has no controller service and no topology.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{}, nil
}

// Probe implements csi.IdentityServer: ready once classes can be read.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapBool(d.ready.Load())}, nil
}

// NodeGetInfo implements csi.NodeServer.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.opts.NodeID}, nil
}

// NodeGetCapabilities implements csi.NodeServer: no staging, no stats.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

// keyedMutex serialises work per key (a target path).
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
