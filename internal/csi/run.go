package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/scheme"
)

// EventComponent is the source of the events the shim records.
const EventComponent = "secrets-store-injector-csi"

// Run is `ssi-agent csi`: it connects to the API server, caches
// SecretProviderClasses, serves the CSI and registration sockets and the
// metrics endpoint, and returns when ctx is done.
//
// RBAC it needs: secretproviderclasses get/list/watch;
// secretproviderclasspodstatuses get/create/update; events create/patch;
// serviceaccounts and pods get when Options.ServiceAccountAnnotations is
// set.
func Run(ctx context.Context, opts Options) error {
	opts, err := opts.complete()
	if err != nil {
		return err
	}
	log := opts.Logger
	cfg := opts.Config
	if cfg == nil {
		if cfg, err = restConfig(opts.Kubeconfig); err != nil {
			return err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "ssi-agent-csi/" + opts.Version
	sch := scheme.New()

	classes, err := crcache.New(cfg, classCacheOptions(sch))
	if err != nil {
		return fmt.Errorf("SecretProviderClass cache: %w", err)
	}
	if _, err := classes.GetInformer(ctx, &ssiv1.SecretProviderClass{}); err != nil {
		return fmt.Errorf("SecretProviderClass informer: %w", err)
	}
	api, err := client.New(cfg, client.Options{Scheme: sch})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(sch, corev1.EventSource{Component: EventComponent, Host: opts.NodeID})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	statusQ := NewStatusQueue(api, api, recorder, log, nil)
	d, err := NewDriver(opts, Deps{
		Mounter:    SystemMounter{SizeBytes: opts.Limits.TmpfsBytes()},
		Classes:    classes,
		APIReader:  api,
		Tokens:     api,
		Status:     statusQ,
		Events:     recorder,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	defer func() { _ = opts.Providers.Close() }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() {
		if err := classes.Start(ctx); err != nil {
			errc <- fmt.Errorf("SecretProviderClass cache: %w", err)
		}
	}()
	go func() {
		if classes.WaitForCacheSync(ctx) {
			d.SetReady()
			log.Info("SecretProviderClass cache synced")
		}
	}()
	go statusQ.Run(ctx, 2)
	if opts.MetricsAddr != "" {
		srv := &http.Server{Addr: opts.MetricsAddr, Handler: d.httpHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics server: %w", err)
			}
		}()
		defer func() { _ = srv.Close() }()
	}
	go func() { errc <- d.Serve(ctx) }()
	log.Info("node CSI shim started", "driver", opts.DriverName, "node", opts.NodeID, "endpoint", opts.Endpoint,
		"rotation", opts.EnableRotation, "rotationPollInterval", opts.RotationPollInterval, "providers", builtInNames(opts),
		"allowedBackendHosts", opts.AllowedBackendHosts.String())
	err = <-errc
	cancel()
	return err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
		kubeconfig = os.Getenv("KUBECONFIG")
		if kubeconfig == "" {
			return nil, errors.New("not running in a cluster and no --kubeconfig (or KUBECONFIG) given")
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// builtInNames are the providers served in-process (not by a plugin).
func builtInNames(opts Options) []string {
	return slices.DeleteFunc(opts.Providers.Names(), func(name string) bool { return slices.Contains(opts.PluginProviders, name) })
}

// httpHandler serves /metrics, /healthz (fails after kubelet rejected the
// registration) and /readyz (the class cache has synced).
func (d *Driver) httpHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := d.Registered(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "SecretProviderClass cache not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Serve serves the CSI socket and, unless disabled, the kubelet
// registration socket until ctx is done; then it deregisters (removes the
// registration socket) and stops.
func (d *Driver) Serve(ctx context.Context) error {
	path, err := socketPath(d.opts.Endpoint)
	if err != nil {
		return err
	}
	l, err := listenUnix(path)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(d.logCalls))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()

	var rsrv *grpc.Server
	var rpath string
	if d.opts.RegistrationDir != "-" {
		rpath = filepath.Join(d.opts.RegistrationDir, RegistrationSocketName(d.opts.DriverName))
		rl, err := listenUnix(rpath)
		if err != nil {
			srv.Stop()
			_ = os.Remove(path)
			return err
		}
		rsrv = grpc.NewServer()
		registerapi.RegisterRegistrationServer(rsrv, &registration{d: d})
		go func() { errc <- rsrv.Serve(rl) }()
	}

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	if rsrv != nil {
		rsrv.Stop()
		_ = os.Remove(rpath)
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	_ = os.Remove(path)
	return err
}

// listenUnix listens on path, replacing a stale socket left by a previous
// run but never another kind of file.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// logCalls logs each CSI call's method, duration and result code. Requests
// are never logged: the volume context carries service-account tokens.
func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	if err != nil {
		d.log.Info("csi call failed", "method", info.FullMethod, "code", status.Code(err).String(), "duration", time.Since(start), "err", status.Convert(err).Message())
	} else {
		d.log.Debug("csi call", "method", info.FullMethod, "duration", time.Since(start))
	}
	return resp, err
}

// classCacheOptions are the options of the shim's SecretProviderClass
// cache: every shim holds every class of the cluster, so each is trimmed to
// what the shim reads.
func classCacheOptions(sch *runtime.Scheme) crcache.Options {
	return crcache.Options{Scheme: sch, DefaultTransform: scheme.TrimForCache}
}
