// Package agent is the in-pod secrets agent: it decodes the configuration
// the webhook wrote into its environment, fetches every object of every
// secrets volume with the pod's own identity, publishes them atomically,
// reports readiness, and rotates them on an interval; local mode
// (`ssi-agent fetch`) drives the same loop from a SecretProviderClass file.
//
// Failure policy. The first fetch of each volume is retried with
// exponential backoff and jitter until FirstFetchTimeout (default
// DefaultFirstFetchTimeout); if it cannot complete, the agent writes a
// termination message naming the class, object and cause and exits
// non-zero. Later fetches that fail keep the last good files (volume.Refresh
// never touches them on error), are retried with backoff, and show up as
// staleness in /metrics. No secret value is ever logged, exported or
// written anywhere but the volume.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/volume"
)

// Defaults used when the configuration leaves a value unset.
const (
	// DefaultFirstFetchTimeout bounds the first fetch. It is long enough to
	// ride out a backend restart or a token that kubelet has not projected
	// yet, and short enough that a misconfigured pod reports why (in its
	// termination message) within a minute instead of hanging in startup.
	DefaultFirstFetchTimeout = 60 * time.Second
	// DefaultHealthAddr serves /healthz, /readyz and /metrics.
	DefaultHealthAddr = ":9811"
	// DefaultTerminationLog is where kubelet reads a container's
	// termination message from (terminationMessagePath).
	DefaultTerminationLog = "/dev/termination-log"
	// DefaultRetryBase is the first retry delay after a failed fetch.
	DefaultRetryBase = 500 * time.Millisecond
	// DefaultRetryMax caps the retry delay after repeated failures when the
	// rotation interval is shorter; a failing backend is then asked at most
	// this often per volume.
	DefaultRetryMax = 5 * time.Minute
	// maxTerminationMessage is kubelet's limit for a termination message.
	maxTerminationMessage = 4096
)

// Options are the injected dependencies of Run. The zero value of each
// field means the production default.
type Options struct {
	// Providers are the backends available, by spec.provider name.
	Providers provider.Set
	// NewProviders, used when Providers is nil, builds the set with the
	// agent's logger once the configuration is decoded; main registers the
	// built-in providers explicitly through it.
	NewProviders func(log *slog.Logger) provider.Set
	// Config is the agent configuration; nil decodes it from the
	// environment variable agentconfig.EnvConfig.
	Config *agentconfig.Config
	// Pod is the pod identity; nil reads it from the downward-API
	// environment variables (agentconfig.PodFromEnv).
	Pod *identity.Pod
	// Tokens overrides the token source built from Config.Tokens.
	Tokens identity.TokenSource
	// LogOutput receives the logs; nil is standard error.
	LogOutput io.Writer
	// TerminationLog is the termination message file; empty is
	// DefaultTerminationLog. "-" disables it.
	TerminationLog string
	// Listener serves health and metrics instead of Config.HealthAddr.
	Listener net.Listener
	// Processes lists and signals the containers' main processes for
	// reload-signal; nil scans /proc (ProcScanner, with the pod's UID).
	Processes Processes
	// RetryBase and RetryMax tune the failure backoff; zero means
	// DefaultRetryBase and DefaultRetryMax.
	RetryBase, RetryMax time.Duration
	// Clock times retries, rotations and the staleness metrics; nil is
	// the real clock. The first-fetch deadline is a context deadline and
	// always real.
	Clock clock.WithTicker
}

// Run is `ssi-agent run`. In the sidecar mode it returns nil when ctx is
// cancelled (SIGTERM) after the first fetch; in the init modes it returns
// nil once every volume is written. Any other outcome is an error, also
// written as the container's termination message.
func Run(ctx context.Context, opts Options) (err error) {
	termLog := opts.TerminationLog
	if termLog == "" {
		termLog = DefaultTerminationLog
	}
	defer func() {
		if err != nil && termLog != "-" {
			writeTerminationMessage(termLog, err.Error())
		}
	}()

	cfg := opts.Config
	if cfg == nil {
		if cfg, err = agentconfig.Decode(os.Getenv(agentconfig.EnvConfig)); err != nil {
			return err
		}
	} else if err = cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(opts.LogOutput, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	pod := agentconfig.PodFromEnv()
	if opts.Pod != nil {
		pod = *opts.Pod
	}
	var tokens identity.TokenSource = cfg.TokenSource()
	if opts.Tokens != nil {
		tokens = opts.Tokens
	}
	// The cloud identity is each volume's own (buildVolumes).
	id := identity.Identity{Pod: pod, Tokens: tokens}

	set := opts.Providers
	if set == nil && opts.NewProviders != nil {
		set = opts.NewProviders(log)
	}
	defer closeProviders(log, set)
	vols, err := buildVolumes(cfg, set, log)
	if err != nil {
		return err
	}
	var reload *reloader
	if cfg.ReloadSignal != "" {
		sig, err := ParseSignal(cfg.ReloadSignal)
		if err != nil {
			return fmt.Errorf("agent config: reloadSignal: %w", err)
		}
		procs := opts.Processes
		if procs == nil {
			procs = ProcScanner{PodUID: pod.UID}
		}
		reload = &reloader{procs: procs, sig: sig, targets: cfg.ReloadContainers, log: log}
		if cfg.ReloadContainers == nil {
			log.Info("the configuration names no containers to signal (written by a webhook before reloadContainers existed): the reload signal goes to every container's main process, as that webhook promised", "signal", cfg.ReloadSignal)
		}
	}
	firstTimeout := cfg.FirstFetchTimeout.Duration
	if firstTimeout == 0 {
		firstTimeout = DefaultFirstFetchTimeout
	}
	r := &runner{
		log:       log,
		clock:     schedule.Clock(opts.Clock),
		id:        id,
		vols:      vols,
		interval:  cfg.RotationInterval.Duration,
		retryBase: orDefault(opts.RetryBase, DefaultRetryBase),
		retryMax:  orDefault(opts.RetryMax, DefaultRetryMax),
		reload:    reload,
	}
	r.started = r.clock.Now()
	r.bindRenewal(cfg.CertRenewAt)
	r.metrics = newMetrics(r)

	addr := cfg.HealthAddr
	if addr == "" {
		addr = DefaultHealthAddr
	}
	ln := opts.Listener
	if ln == nil {
		addr = healthAddr(addr, os.Getenv(agentconfig.EnvPodIP))
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("serve health and metrics on %s: %w", addr, err)
		}
	}
	stopHTTP := serveHTTP(ln, r, log)
	defer stopHTTP()

	log.Info("agent starting", "mode", string(cfg.Mode), "volumes", len(vols), "rotationInterval", r.interval.String(),
		"firstFetchTimeout", firstTimeout.String(), "health", ln.Addr().String(), "pod", pod.Namespace+"/"+pod.Name)

	switch cfg.Mode {
	case agentconfig.ModeInit, agentconfig.ModeInitOnly:
		return r.first(ctx, firstTimeout)
	case agentconfig.ModeRotate:
		// The init container wrote the files; readiness needs them there.
		r.adoptWritten()
		r.rotate(ctx)
		revokeOnShutdown(log, cfg.RevokeOnShutdown, set)
		return nil
	default: // sidecar
		if err := r.first(ctx, firstTimeout); err != nil {
			return err
		}
		r.rotate(ctx)
		revokeOnShutdown(log, cfg.RevokeOnShutdown, set)
		return nil
	}
}

// buildVolumes parses each volume's class snapshot, picks its provider
// and its cloud identity.
func buildVolumes(cfg *agentconfig.Config, set provider.Set, log *slog.Logger) ([]*vol, error) {
	var out []*vol
	for i := range cfg.Volumes {
		cv := &cfg.Volumes[i]
		class, err := spc.ParseAnnotated(cv.Class.Namespace, cv.Class.Name, cv.Class.Provider, cv.Class.Parameters, cv.Class.Annotations)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", cv.Name, err)
		}
		p, err := set.Get(class.Provider)
		if err != nil {
			return nil, fmt.Errorf("volume %s: SecretProviderClass %s: %w (built-in providers: %s)", cv.Name, class.Key(), err, providerNames(set))
		}
		// Admission checked and resolved the templates; compiling again
		// binds them to this class's files.
		tpls, err := class.CompileTemplates(cv.Templates)
		if err != nil {
			return nil, fmt.Errorf("volume %s: SecretProviderClass %s: %w", cv.Name, class.Key(), err)
		}
		v := &volume.Volume{Class: class, Dir: cv.Path, Permission: cv.Permission, Templates: tpls, Log: log.With("volume", cv.Name)}
		if dir := cv.SecretsDir; dir != "" {
			// Read at every fetch: kubelet updates the Secret volume
			// when the Secret changes.
			v.Secrets = func() (map[string]string, error) { return volume.ReadSecretsDir(dir) }
		}
		out = append(out, &vol{
			name:     cv.Name,
			provider: p,
			v:        v,
			cloud:    cfg.CloudOf(cv),
			wake:     make(chan struct{}, 1),
		})
	}
	return out, nil
}

func providerNames(set provider.Set) string {
	if len(set) == 0 {
		return "none"
	}
	return strings.Join(set.Names(), ", ")
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// writeTerminationMessage writes msg where kubelet shows it in the pod's
// status, truncated to kubelet's limit.
func writeTerminationMessage(path, msg string) {
	if len(msg) > maxTerminationMessage {
		msg = msg[:maxTerminationMessage-3] + "..."
	}
	// The path is the container's terminationMessagePath.
	err := os.WriteFile(path, []byte(msg), 0o644) //nolint:gosec
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		_, _ = fmt.Fprintf(os.Stderr, "ssi-agent: write termination message to %s: %v\n", path, err)
	}
}
