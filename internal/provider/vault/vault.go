// Package vault is the provider "vault": it reads HashiCorp Vault secrets
// with the parameters and file semantics of the upstream Vault CSI provider
// (Kubernetes auth with the pod's service-account token, Vault namespaces,
// TLS options, KV version 1 and 2, secretKey extraction or the whole
// response as JSON, GET/PUT/POST with secretArgs, encodings).
//
// Beyond upstream, a Provider lives as long as its process and keeps state
// between fetches: the Vault token of each pod and Vault configuration is
// kept and renewed, and secrets that come with a lease (dynamic secrets
// such as database credentials) are read once and their leases renewed in
// the background; later fetches answer Unchanged for them instead of minting
// new credentials every rotation. When a lease can no longer be renewed the
// next fetch reads the secret again, and the provider asks for that fetch
// early through provider.Waker. Close stops the background work; leases are
// never revoked, so the files already written stay valid until they expire.
package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
)

// Name is the spec.provider value this provider serves.
const Name = spc.ProviderVault

// Options tune a Provider. The zero value is usable.
type Options struct {
	// Logger receives the provider's log lines (logins, renewals, lease
	// ends); they carry paths, roles and durations, never tokens or
	// values. Nil discards them.
	Logger *slog.Logger
	// HMACKey keys object versions. Nil means 32 random bytes per
	// Provider, so versions are stable for the life of the process.
	HMACKey []byte
	// EnvToken lets a fetch whose identity has no service-account token
	// use the VAULT_TOKEN environment variable as the Vault token, as the
	// vault CLI does; meant for local mode. Kubernetes auth is used
	// whenever a service-account token is available.
	EnvToken bool
	// IdleTimeout drops the token and leases of a pod and Vault
	// configuration that no fetch used for this long, for processes that
	// serve many pods (the node shim). Zero keeps them for the process's
	// life, as the in-pod agent wants.
	IdleTimeout time.Duration
	// Files reads the files the class's TLS parameters name
	// (vaultCACertPath, vaultCADirectory, vaultTLSClientCertPath and
	// KeyPath): only regular files, size-limited, and in shared processes
	// only under the operator's directory.
	Files limits.Files
	// MaxResponseBytes caps every response body read from Vault; 0 means
	// limits.Sizes{}.ResponseBytes().
	MaxResponseBytes int64
	// Clock times token and lease lifetimes, their renewals and retries,
	// and idle sessions; nil is the real clock. Request timeouts are
	// context deadlines and always real.
	Clock clock.WithTicker
}

// Provider is the Vault provider. It is safe for concurrent use and must be
// closed to stop its background renewals.
type Provider struct {
	log         *slog.Logger
	clock       clock.WithTicker
	key         []byte
	envToken    bool
	idleTimeout time.Duration
	files       limits.Files
	maxResponse int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[sessionKey]*session
	closed   bool

	wake chan struct{}
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Waker    = (*Provider)(nil)
	_ io.Closer         = (*Provider)(nil)
)

// New returns a Provider.
func New(opts Options) *Provider {
	key := opts.HMACKey
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic(fmt.Sprintf("vault provider: no randomness for the version key: %v", err))
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxResponse := opts.MaxResponseBytes
	if maxResponse <= 0 {
		maxResponse = limits.Sizes{}.ResponseBytes()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Provider{
		log:         log.With("provider", Name),
		clock:       schedule.Clock(opts.Clock),
		key:         key,
		envToken:    opts.EnvToken,
		idleTimeout: opts.IdleTimeout,
		files:       opts.Files,
		maxResponse: maxResponse,
		ctx:         ctx,
		cancel:      cancel,
		sessions:    map[sessionKey]*session{},
		wake:        make(chan struct{}, 1),
	}
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return Name }

// Wake implements provider.Waker: it receives when a lease can no longer be
// renewed, so the secret should be read again before it expires.
func (p *Provider) Wake() <-chan struct{} { return p.wake }

func (p *Provider) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close stops token and lease renewal. Nothing is revoked.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	p.sessions = map[sessionKey]*session{}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// ForgetPod drops the Vault tokens and leases of the pod with this UID
// (every session the pod's fetches created), stopping their renewals and
// closing their idle connections to Vault. The
// node shim calls it when the pod's last volume is unpublished, so a node
// where pods come and go keeps no state of pods that are gone; an idle
// timeout alone would keep each one, and renew its token, for that long.
// Nothing is revoked: the pod is gone and the tokens expire.
func (p *Provider) ForgetPod(uid string) {
	if uid == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.sessions {
		if k.podUID == uid {
			s.end()
			delete(p.sessions, k)
		}
	}
}

// Fetch implements provider.Provider. Objects that share secretPath and
// method share one response per fetch, as upstream, so a dynamic username
// and password belong together.
func (p *Provider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	c := req.Class
	if c == nil || c.Vault == nil {
		class := ""
		if c != nil {
			class = c.Key()
		}
		return nil, &provider.Error{Class: class, Provider: Name, Reason: provider.ReasonInvalidConfig,
			Err: errors.New("the class has no vault parameters")}
	}
	if len(c.Vault.Objects) == 0 {
		// objects: "[]": nothing to read, no login needed.
		return nil, nil
	}
	s, err := p.session(req)
	if err != nil {
		return nil, &provider.Error{Class: c.Key(), Provider: Name, Reason: reasonOf(err), Err: err}
	}
	kept := keptGroups(c, req)
	responses, failed, err := p.readAll(ctx, s, c, kept)
	if err != nil {
		return nil, err
	}
	// Every object is answered or has its own failure (provider.Partial),
	// so that an optional object Vault does not have can be left out.
	out := make([]provider.Object, 0, len(c.Vault.Objects))
	var errs []*provider.Error
	for i := range c.Vault.Objects {
		o := &c.Vault.Objects[i]
		fail := func(err error) {
			errs = append(errs, &provider.Error{Class: c.Key(), Provider: Name, Object: o.ObjectName, Reason: reasonOf(err), Err: err})
		}
		gk := groupOf(o)
		if kept[gk] {
			out = append(out, provider.Object{ID: o.ObjectName, Version: req.Current[o.ObjectName], Unchanged: true, Group: gk.String()})
			continue
		}
		if err := failed[gk]; err != nil {
			fail(err)
			continue
		}
		resp := responses[gk]
		content, stable, err := render(resp.secret, o)
		if err != nil {
			fail(err)
			continue
		}
		ver, err := version(p.key, o, stable)
		if err != nil {
			fail(provider.WithReason(provider.ReasonInvalidConfig, err))
			continue
		}
		if cur, ok := req.Current[o.ObjectName]; ok && cur == ver {
			out = append(out, provider.Object{ID: o.ObjectName, Version: ver, Unchanged: true, Group: gk.String(), Expires: resp.expires})
			continue
		}
		mode := o.FilePermission
		if mode == 0 && !o.ExactMode {
			mode = req.Permission
		}
		out = append(out, provider.Object{ID: o.ObjectName, Version: ver, Files: []atomicdir.File{{Path: o.ObjectName, Mode: mode, ExactMode: o.ExactMode, Data: content}}, Group: gk.String(), Expires: resp.expires})
	}
	return provider.Partial(out, errs)
}

// maxParallelReads bounds the requests one fetch has in flight, so a class
// with many objects neither waits on them one by one (the cold start of a
// pod) nor floods Vault.
const maxParallelReads = 8

// readAll reads every distinct (path, method) group of the class, in
// parallel, and returns the responses and the failed reads by group; the
// error is a failure of the class as a whole (the login). Fetch reports the
// failures in class order, so messages do not depend on timing.
func (p *Provider) readAll(ctx context.Context, s *session, c *spc.Class, kept map[groupKey]bool) (map[groupKey]*response, map[groupKey]error, error) {
	if allKept(c, kept) {
		// Nothing to read: not even a login.
		return nil, nil, nil
	}
	// Log in once up front rather than have every read wait for it.
	if _, err := s.current(ctx); err != nil {
		return nil, nil, &provider.Error{Class: c.Key(), Provider: Name, Object: c.Vault.Objects[0].ObjectName, Reason: reasonOf(err), Err: err}
	}
	type job struct {
		first *spc.VaultObject
		gk    groupKey
		resp  *response
		err   error
	}
	var jobs []*job
	seen := map[groupKey]bool{}
	for i := range c.Vault.Objects {
		o := &c.Vault.Objects[i]
		if gk := groupOf(o); !seen[gk] && !kept[gk] {
			seen[gk] = true
			jobs = append(jobs, &job{first: o, gk: gk})
		}
	}
	provider.Parallel(len(jobs), maxParallelReads, func(i int) {
		j := jobs[i]
		j.resp, j.err = s.get(ctx, c.Key(), j.first, j.gk)
	})
	out := make(map[groupKey]*response, len(jobs))
	failed := map[groupKey]error{}
	for _, j := range jobs {
		if j.err != nil {
			failed[j.gk] = j.err
			continue
		}
		out[j.gk] = j.resp
	}
	return out, failed, nil
}
