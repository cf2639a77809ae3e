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
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/logging"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/volume"
	"github.com/ssinjector/ssi/internal/yamlstream"
)

// DefaultWatchInterval is the rotation interval of `ssi-agent fetch
// --watch`, the upstream driver's default rotationPollInterval.
const DefaultWatchInterval = 2 * time.Minute

// FetchOptions configure local mode, `ssi-agent fetch`.
type FetchOptions struct {
	// Providers are the backends available, by spec.provider name.
	Providers provider.Set
	// NewProviders, used when Providers is nil, builds the set with the
	// logger of the run.
	NewProviders func(log *slog.Logger) provider.Set
	// SPCFile is a YAML file holding one SecretProviderClass.
	SPCFile string
	// OutDir receives the files, laid out as in the pod.
	OutDir string
	// TokenFile, when set, is the service-account token handed to the
	// provider for every audience it asks for; otherwise providers use
	// ambient credentials.
	TokenFile string
	// NodePublishSecretDir, when set, is a directory of one file per key
	// standing for the volume's nodePublishSecretRef Secret (as the
	// webhook mounts it into the agent): an Azure service principal's
	// clientid and clientsecret, or GCP's key.json. It is read at every
	// fetch.
	NodePublishSecretDir string
	// Watch keeps rotating every Interval (default DefaultWatchInterval)
	// until ctx ends.
	Watch    bool
	Interval time.Duration
	// Timeout bounds the first fetch, retries included; zero means
	// DefaultFirstFetchTimeout.
	Timeout time.Duration
	// Permission is the mode of files whose object sets none (0644).
	Permission fs.FileMode
	// LogOutput, LogFormat and LogLevel configure logging (logging.New:
	// empty is text at info); nil output is standard error.
	LogOutput io.Writer
	LogFormat string
	LogLevel  string
	// HealthAddr, when set, serves /healthz, /readyz and /metrics.
	HealthAddr string
	// RetryBase and RetryMax tune the failure backoff.
	RetryBase, RetryMax time.Duration
	// Clock times retries and watch fetches; nil is the real clock.
	Clock clock.WithTicker
}

// Fetch is `ssi-agent fetch`: the agent's loop on a SecretProviderClass
// file and a local directory, with the caller's credentials.
func Fetch(ctx context.Context, opts FetchOptions) error {
	if opts.SPCFile == "" || opts.OutDir == "" {
		return errors.New("fetch needs --spc FILE and --out DIR")
	}
	log, err := logging.New(opts.LogOutput, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	obj, class, err := readClassFile(opts.SPCFile)
	if err != nil {
		return err
	}
	// Local mode reads no ConfigMaps: a configMapKeyRef template is an
	// error naming the template.
	_, tset, err := class.Templates(obj.Annotations[render.Annotation], nil)
	if err != nil {
		err = fmt.Errorf("%s: SecretProviderClass %s: %w", opts.SPCFile, class.Key(), err)
	}
	if err != nil {
		return err
	}
	for _, w := range class.Warnings {
		log.Warn(w)
	}
	set := opts.Providers
	if set == nil && opts.NewProviders != nil {
		set = opts.NewProviders(log)
	}
	defer closeProviders(log, set)
	p, err := set.Get(class.Provider)
	if err != nil {
		return fmt.Errorf("SecretProviderClass %s: %w (built-in providers: %s)", class.Key(), err, providerNames(set))
	}
	var tokens identity.TokenSource = noTokens{}
	if opts.TokenFile != "" {
		tokens = fileForEveryAudience(opts.TokenFile)
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultFirstFetchTimeout
	}
	lv := &volume.Volume{Class: class, Dir: opts.OutDir, Permission: opts.Permission, Templates: tset, Log: log}
	id := identity.Identity{Pod: identity.Pod{Namespace: class.Namespace}, Tokens: tokens}
	var cloud identity.Cloud
	if dir := opts.NodePublishSecretDir; dir != "" {
		lv.Secrets = func() (map[string]string, error) { return volume.ReadSecretsDir(dir) }
		// The identity the webhook decides for a volume with a
		// nodePublishSecretRef (no service account is known here).
		cloud = identity.Decide(class, identity.Sources{NodePublishSecret: true}).Cloud
	}
	r := &runner{
		log:   log,
		clock: schedule.Clock(opts.Clock),
		id:    id,
		vols: []*vol{{
			name:     "local",
			provider: p,
			v:        lv,
			cloud:    cloud,
			wake:     make(chan struct{}, 1),
		}},
		interval:  interval,
		retryBase: orDefault(opts.RetryBase, DefaultRetryBase),
		retryMax:  orDefault(opts.RetryMax, DefaultRetryMax),
	}
	r.started = r.clock.Now()
	r.bindRenewal(0)
	r.metrics = newMetrics(r)
	if opts.HealthAddr != "" {
		ln, err := net.Listen("tcp", opts.HealthAddr)
		if err != nil {
			return fmt.Errorf("serve health and metrics on %s: %w", opts.HealthAddr, err)
		}
		defer serveHTTP(ln, r, log)()
	}
	if err := r.first(ctx, timeout); err != nil {
		return err
	}
	if opts.Watch {
		r.rotate(ctx)
	}
	return nil
}

// ReadClassFile parses a YAML file holding one SecretProviderClass (other
// documents in the file, split by yamlstream.Split, are ignored). A class without a namespace is in
// "default", as kubectl would create it.
func ReadClassFile(path string) (*spc.Class, error) {
	_, c, err := readClassFile(path)
	return c, err
}

// readClassFile is ReadClassFile that also returns the object (its
// annotations hold the templates).
func readClassFile(path string) (*ssiv1.SecretProviderClass, *spc.Class, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read SecretProviderClass file: %w", err)
	}
	docs, err := yamlstream.Split(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var found []*ssiv1.SecretProviderClass
	for i, d := range docs {
		doc := d.Text
		where := fmt.Sprintf("%s: document %d (line %d)", path, i+1, d.Line)
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		if meta.Kind != ssiv1.KindSecretProviderClass {
			continue
		}
		if !strings.HasPrefix(meta.APIVersion, ssiv1.GroupVersion.Group+"/") {
			return nil, nil, fmt.Errorf("%s: SecretProviderClass of apiVersion %q, want %s", where, meta.APIVersion, ssiv1.GroupVersion)
		}
		obj := &ssiv1.SecretProviderClass{}
		if err := yaml.Unmarshal(doc, obj); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		found = append(found, obj)
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("%s holds no SecretProviderClass", path)
	case 1:
	default:
		return nil, nil, fmt.Errorf("%s holds %d SecretProviderClasses; give a file with one", path, len(found))
	}
	obj := found[0]
	if obj.Namespace == "" {
		obj.Namespace = "default"
	}
	c, err := spc.Parse(obj)
	return obj, c, err
}

// fileForEveryAudience reads one token file for any audience, re-reading it
// on every call so that a refreshed token is picked up.
func fileForEveryAudience(path string) identity.TokenSource {
	return identity.FuncTokens(func(_ context.Context, audience string) (string, error) {
		t, err := identity.ReadTokenFile(path)
		if err != nil {
			return "", fmt.Errorf("token for audience %q: %w", audience, err)
		}
		return t, nil
	})
}

// noTokens has no token for any audience; providers then use ambient
// credentials (SDK environment variables, files, metadata services).
type noTokens struct{}

func (noTokens) Token(_ context.Context, audience string) (string, error) {
	return "", fmt.Errorf("%w %q (local mode without --token-file)", identity.ErrNoToken, audience)
}
