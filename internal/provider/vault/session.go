package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// requestTimeout bounds background requests (renewals, logins).
const requestTimeout = 30 * time.Second

// sessionKey identifies a Vault login: where Vault is and how to reach it,
// how to log in, and for which pod.
type sessionKey struct {
	address, namespace                               string
	caCert, caDir, serverName, clientCert, clientKey string
	skipVerify                                       bool
	mount, role, audience                            string
	podNamespace, podName, podUID, serviceAccount    string
}

func keyOf(v *spc.Vault, id identity.Identity) sessionKey {
	pod := id.Pod
	return sessionKey{
		address: v.Address, namespace: v.Namespace,
		caCert: v.CACertPath, caDir: v.CADirectory, serverName: v.TLSServerName,
		clientCert: v.TLSClientCertPath, clientKey: v.TLSClientKeyPath, skipVerify: v.SkipTLSVerify,
		mount: v.AuthMountPath, role: v.RoleName, audience: identity.VaultLoginAudience(v.Audience, id.Cloud),
		podNamespace: pod.Namespace, podName: pod.Name, podUID: pod.UID, serviceAccount: pod.ServiceAccount,
	}
}

// session is the Vault client, token and leases of one sessionKey.
type session struct {
	p      *Provider
	key    sessionKey
	client *vaultapi.Client
	// conns is the client's HTTP client, whose kept-alive connections
	// end closes.
	conns  *http.Client
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{}

	// loginMu serialises logins, so that concurrent failures log in once.
	loginMu sync.Mutex

	mu       sync.Mutex
	tokens   identity.TokenSource
	tok      *token
	gen      int
	leases   map[leaseKey]*lease
	lastUsed time.Time
}

// session returns the session for the request, creating it (and its
// client) on first use.
func (p *Provider) session(req provider.Request) (*session, error) {
	v := req.Class.Vault
	key := keyOf(v, req.Identity)
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, provider.WithReason(provider.ReasonUnavailable, errors.New("the vault provider is closed"))
	}
	if p.idleTimeout > 0 {
		for k, s := range p.sessions {
			s.mu.Lock()
			idle := now.Sub(s.lastUsed) > p.idleTimeout
			s.mu.Unlock()
			if idle && k != key {
				s.end()
				delete(p.sessions, k)
			}
		}
	}
	s := p.sessions[key]
	if s == nil {
		client, conns, err := p.newClient(v)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(p.ctx)
		s = &session{
			p: p, key: key, client: client, conns: conns, ctx: ctx, cancel: cancel,
			kick:   make(chan struct{}, 1),
			leases: map[leaseKey]*lease{},
			log: p.log.With("vaultAddress", client.Address(), "role", v.RoleName, "authMount", v.AuthMountPath,
				"pod", req.Identity.Pod.Namespace+"/"+req.Identity.Pod.Name),
		}
		p.sessions[key] = s
		p.wg.Add(1)
		go s.runToken()
	}
	s.mu.Lock()
	s.tokens = req.Identity.Tokens
	s.lastUsed = now
	s.mu.Unlock()
	return s, nil
}

// end stops the session's renewals and closes its idle connections to
// Vault, for a session that is dropped (its pod gone or idle); nothing is
// revoked.
func (s *session) end() {
	s.cancel()
	if s.conns != nil {
		s.conns.CloseIdleConnections()
	}
}

// timerUntil returns a timer of the provider's clock that fires at when,
// and its channel; for a time already passed, no timer and a channel that
// is ready at once (a fake clock's timer would wait for the next step).
func (p *Provider) timerUntil(when time.Time) (clock.Timer, <-chan time.Time) {
	if d := when.Sub(p.clock.Now()); d > 0 {
		t := p.clock.NewTimer(d)
		return t, t.C()
	}
	ch := make(chan time.Time, 1)
	ch <- when
	return nil, ch
}

// goBackground runs f as background work of the provider unless it is
// closed.
func (p *Provider) goBackground(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// newClient builds a Vault client: address from the class, else
// VAULT_ADDR; TLS from the environment (VAULT_CACERT, VAULT_CAPATH,
// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME,
// VAULT_SKIP_VERIFY) overlaid with whatever TLS fields the class sets;
// namespace from the class, else VAULT_NAMESPACE. VAULT_TOKEN is never
// picked up implicitly. The files the class names are read here, in the
// process that fetches, through p.files (regular files only, size-limited,
// and in shared processes only under the operator's directory); the
// environment's are the operator's and read by the Vault client. Every
// response body is limited to p.maxResponse bytes. Redirects are followed
// only to the same host (provider.CheckRedirect), whatever
// VAULT_DISABLE_REDIRECTS says. The *http.Client returned is the one the
// Vault client sends through, so a dropped session can close its idle
// connections.
func (p *Provider) newClient(v *spc.Vault) (*vaultapi.Client, *http.Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("read the VAULT_* client settings of the environment: %w", cfg.Error))
	}
	if v.Address != "" {
		cfg.Address = v.Address
	}
	tr, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("the Vault client's transport is a %T", cfg.HttpClient.Transport))
	}
	if v.CACertPath != "" || v.CADirectory != "" || v.TLSServerName != "" || v.TLSClientCertPath != "" || v.TLSClientKeyPath != "" || v.SkipTLSVerify {
		tc, err := p.classTLS(v, tr.TLSClientConfig)
		if err != nil {
			return nil, nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("configure TLS for Vault at %s: %w", cfg.Address, err))
		}
		tr.TLSClientConfig = tc
	}
	// The api client's own redirect handling follows one redirect to any
	// host, with the token header; net/http follows only same-host ones.
	cfg.DisableRedirects = true
	cfg.HttpClient.CheckRedirect = provider.CheckRedirect
	cfg.HttpClient.Transport = limits.Transport(tr, p.maxResponse)
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("create the Vault client for %s: %w", cfg.Address, err))
	}
	c.ClearToken()
	if v.Namespace != "" {
		c.SetNamespace(v.Namespace)
	}
	// The client keeps cfg and sends through cfg.HttpClient.
	return c, cfg.HttpClient, nil
}

// classTLS overlays the class's TLS parameters on base (the environment's
// configuration). A CA file wins over a CA directory, as in the Vault
// client. Errors name the parameter and path, never the files' content.
func (p *Provider) classTLS(v *spc.Vault, base *tls.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		tc = base.Clone()
	}
	switch {
	case v.CACertPath != "":
		b, err := p.files.ReadFile("vaultCACertPath", v.CACertPath)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("parameters.vaultCACertPath %q holds no PEM certificate", v.CACertPath)
		}
		tc.RootCAs = pool
	case v.CADirectory != "":
		files, err := p.files.ReadDir("vaultCADirectory", v.CADirectory)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		n := 0
		for _, b := range files {
			if pool.AppendCertsFromPEM(b) {
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("parameters.vaultCADirectory %q holds no PEM certificate", v.CADirectory)
		}
		tc.RootCAs = pool
	}
	if v.TLSClientCertPath != "" {
		certPEM, err := p.files.ReadFile("vaultTLSClientCertPath", v.TLSClientCertPath)
		if err != nil {
			return nil, err
		}
		keyPEM, err := p.files.ReadFile("vaultTLSClientKeyPath", v.TLSClientKeyPath)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The crypto errors describe the defect, not the bytes, but
			// the message stays fixed so no key material can leak.
			return nil, fmt.Errorf("parameters.vaultTLSClientCertPath %q and vaultTLSClientKeyPath %q are not a PEM certificate and its private key", v.TLSClientCertPath, v.TLSClientKeyPath)
		}
		tc.Certificates = []tls.Certificate{cert}
		tc.GetClientCertificate = nil
	}
	if v.TLSServerName != "" {
		tc.ServerName = v.TLSServerName
	}
	if v.SkipTLSVerify {
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

// read requests the object's secret path, logging in again once if Vault
// answers 403 (the token may have been revoked or expired), as upstream.
// It returns the response and the token generation that read it.
func (s *session) read(ctx context.Context, o *spc.VaultObject) (*vaultapi.Secret, int, error) {
	t, err := s.current(ctx)
	if err != nil {
		return nil, 0, err
	}
	path := o.APIPath
	if len(o.Query) > 0 {
		path += "?" + o.Query.Encode()
	}
	op := o.Method + " " + path
	for attempt := 0; ; attempt++ {
		r := s.client.NewRequest(o.Method, o.APIPath)
		r.ClientToken = t.value
		if len(o.Query) > 0 {
			r.Params = url.Values{}
			for k, vs := range o.Query {
				r.Params[k] = append([]string(nil), vs...)
			}
		}
		if o.SecretArgs != nil {
			if err := r.SetJSONBody(o.SecretArgs); err != nil {
				return nil, 0, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("%s: secretArgs cannot be sent as JSON (%s)", op, jsonErrorKind(err)))
			}
		}
		resp, err := s.client.RawRequestWithContext(ctx, r) //nolint:staticcheck // see login
		if err != nil {
			closeBody(resp)
			ae := newAPIError(op, resp, err)
			if attempt == 0 && ae.Status == http.StatusForbidden && !t.env {
				s.log.Info("Vault denied a request; logging in again", "path", path)
				nt, lerr := s.login(ctx, t, "Vault answered 403")
				if lerr != nil {
					return nil, 0, provider.WithReason(reasonOf(lerr), fmt.Errorf("%w; logging in again failed: %w", ae, lerr))
				}
				t = nt
				continue
			}
			if ae.Status == http.StatusNotFound && !strings.Contains(o.APIPath, "/data/") {
				ae.Hint = "nothing at this path; KV version 2 secrets are read at <mount>/data/<name>"
			}
			return nil, 0, classify(op, ae)
		}
		sec, perr := vaultapi.ParseSecret(resp.Body)
		closeBody(resp)
		if errors.Is(perr, limits.ErrTooLarge) {
			return nil, 0, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("%s: %w", op, perr))
		}
		if perr != nil {
			return nil, 0, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("%s: the answer is not Vault JSON", op))
		}
		if sec == nil || sec.Data == nil {
			var warnings []string
			if sec != nil {
				warnings = sec.Warnings
			}
			return nil, 0, provider.WithReason(provider.ReasonNotFound, fmt.Errorf("%s: empty response from %q, warnings: %v", op, o.SecretPath, warnings))
		}
		for _, w := range sec.Warnings {
			s.log.Warn("warning in Vault's response", "path", path, "warning", w)
		}
		return sec, t.gen, nil
	}
}

func closeBody(resp *vaultapi.Response) {
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
}
