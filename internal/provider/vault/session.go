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
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

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

func keyOf(v *spc.Vault, pod identity.Pod) sessionKey {
	return sessionKey{
		address: v.Address, namespace: v.Namespace,
		caCert: v.CACertPath, caDir: v.CADirectory, serverName: v.TLSServerName,
		clientCert: v.TLSClientCertPath, clientKey: v.TLSClientKeyPath, skipVerify: v.SkipTLSVerify,
		mount: v.AuthMountPath, role: v.RoleName, audience: v.Audience,
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

// token is a Vault token and what is known of its lifetime. Values are
// replaced, never changed, so readers may keep a pointer.
type token struct {
	value string
	// gen counts logins in the session; leases remember the gen of the
	// token that read them, because Vault revokes a token's leases with it.
	gen int
	// ttl is what login granted, and the increment renewals ask for.
	ttl time.Duration
	// expires is zero for tokens that never expire.
	expires   time.Time
	renewable bool
	// final is set once a renewal granted less than asked (the token's
	// maximum TTL is near) or the token is not renewable.
	final   bool
	renewAt time.Time
	// env marks VAULT_TOKEN: used as is, never renewed or replaced.
	env bool
}

// usable reports whether t can still be sent, with a margin for the
// request's own time.
func (t *token) usable(now time.Time) bool {
	if t == nil {
		return false
	}
	if t.env || t.expires.IsZero() {
		return true
	}
	margin := t.ttl / 10
	if margin > 5*time.Second {
		margin = 5 * time.Second
	}
	return now.Before(t.expires.Add(-margin))
}

// renewPoint is when to act on a lifetime that started at start and lasts
// ttl: two thirds in, leaving a third for retries.
func renewPoint(start time.Time, ttl time.Duration) time.Time {
	d := ttl * 2 / 3
	if d < 200*time.Millisecond {
		d = 200 * time.Millisecond
	}
	return start.Add(d)
}

// retryDelay is the wait before retrying a failed renewal with remaining
// lifetime left.
func retryDelay(remaining time.Duration) time.Duration {
	d := remaining / 3
	switch {
	case d < 500*time.Millisecond:
		return 500 * time.Millisecond
	case d > 30*time.Second:
		return 30 * time.Second
	}
	return d
}

// session returns the session for the request, creating it (and its
// client) on first use.
func (p *Provider) session(req provider.Request) (*session, error) {
	v := req.Class.Vault
	key := keyOf(v, req.Identity.Pod)
	now := time.Now()
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

// current returns the session's token, logging in when there is none or
// it is about to expire.
func (s *session) current(ctx context.Context) (*token, error) {
	s.mu.Lock()
	t := s.tok
	s.mu.Unlock()
	now := time.Now()
	if t.usable(now) && (!t.final || !now.After(t.renewAt)) {
		return t, nil
	}
	// A token in the last third of its final lifetime would take any lease
	// read with it down soon: log in instead.
	return s.login(ctx, t, "no valid token")
}

// login logs in with the pod's service-account token, unless another
// caller already replaced failed (nil: any usable token will do).
func (s *session) login(ctx context.Context, failed *token, why string) (*token, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	s.mu.Lock()
	cur, src := s.tok, s.tokens
	s.mu.Unlock()
	if cur.usable(time.Now()) && (failed == nil || cur.value != failed.value) {
		return cur, nil
	}
	k := s.key
	var jwt string
	var err error
	if src == nil {
		err = fmt.Errorf("%w %q: the identity has no token source", identity.ErrNoToken, k.audience)
	} else {
		jwt, err = src.Token(ctx, k.audience)
	}
	if err != nil {
		if s.p.envToken && errors.Is(err, identity.ErrNoToken) {
			if vt := os.Getenv(vaultapi.EnvVaultToken); vt != "" {
				return s.install(&token{value: vt, env: true}, "VAULT_TOKEN"), nil
			}
		}
		aud := strconv.Quote(k.audience)
		if k.audience == "" {
			aud = "(API server default)"
		}
		return nil, provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("service-account token for audience %s: %w", aud, err))
	}
	op := fmt.Sprintf("log in at auth/%s/login as role %q", k.mount, k.role)
	r := s.client.NewRequest(http.MethodPost, "/v1/auth/"+k.mount+"/login")
	r.ClientToken = ""
	if err := r.SetJSONBody(map[string]string{"role": k.role, "jwt": jwt}); err != nil {
		return nil, provider.WithReason(provider.ReasonUnknown, fmt.Errorf("%s: encode the request", op))
	}
	// Raw requests (deprecated for general use) because the provider needs
	// what upstream does: any method with a JSON body, a per-request token
	// on a shared client, and the raw answer for api.ParseSecret.
	resp, err := s.client.RawRequestWithContext(ctx, r) //nolint:staticcheck // see above
	if err != nil {
		closeBody(resp)
		ae := newAPIError(op, resp, err)
		reason := provider.ReasonUnauthenticated
		switch {
		case ae.Status == 0 || ae.Status >= 500:
			reason = provider.ReasonUnavailable
		case ae.Status == http.StatusTooManyRequests:
			reason = provider.ReasonThrottled
		}
		return nil, provider.WithReason(reason, ae)
	}
	sec, err := vaultapi.ParseSecret(resp.Body)
	closeBody(resp)
	if err != nil || sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: Vault's answer carries no client token", op))
	}
	now := time.Now()
	t := &token{value: sec.Auth.ClientToken, renewable: sec.Auth.Renewable, ttl: time.Duration(sec.Auth.LeaseDuration) * time.Second}
	if t.ttl > 0 {
		t.expires = now.Add(t.ttl)
		t.renewAt = renewPoint(now, t.ttl)
		t.final = !t.renewable
	}
	s.log.Info("logged in to Vault", "reason", why, "tokenTTL", t.ttl.String(), "renewable", t.renewable)
	return s.install(t, why), nil
}

// install makes t the session's token. Leases read with an earlier token
// die with it, so they are due for a new read, and the agent is woken.
func (s *session) install(t *token, why string) *token {
	s.mu.Lock()
	s.gen++
	t.gen = s.gen
	s.tok = t
	stale := 0
	for _, l := range s.leases {
		if !l.due {
			l.due = true
			stale++
		}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if stale > 0 {
		s.log.Info("new Vault token; secrets leased under the previous one will be read again", "reason", why, "leases", stale)
		s.p.signal()
	}
	return t
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
					return nil, 0, provider.WithReason(classify(lerr), fmt.Errorf("%w; logging in again failed: %w", ae, lerr))
				}
				t = nt
				continue
			}
			if ae.Status == http.StatusNotFound && !strings.Contains(o.APIPath, "/data/") {
				ae.Hint = "nothing at this path; KV version 2 secrets are read at <mount>/data/<name>"
			}
			return nil, 0, ae
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

// runToken renews the session's token two thirds into its lifetime, so a
// token survives between fetches and keeps its leases alive. When the
// token can no longer be extended and leases depend on it, it logs in
// again ahead of expiry.
func (s *session) runToken() {
	defer s.p.wg.Done()
	for {
		s.mu.Lock()
		t := s.tok
		s.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if t != nil && !t.env && !t.expires.IsZero() {
			timer = time.NewTimer(time.Until(t.renewAt))
			fire = timer.C
		}
		select {
		case <-s.ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.kick:
			if timer != nil {
				timer.Stop()
			}
			continue
		case <-fire:
		}
		s.mu.Lock()
		same := s.tok == t
		leases := len(s.leases)
		s.mu.Unlock()
		if !same {
			continue
		}
		if t.final {
			if leases == 0 {
				// Nothing depends on this token between fetches, and a
				// fetch logs in when it needs to. Wait for a lease or a
				// new token.
				select {
				case <-s.ctx.Done():
					return
				case <-s.kick:
				}
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
			_, err := s.login(ctx, t, "token reaches its maximum TTL")
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("logging in again before the token expires failed", "error", err.Error())
				s.retryLater(t)
			}
			continue
		}
		s.renewToken(t)
	}
}

// renewToken renews t with auth/token/renew-self.
func (s *session) renewToken(t *token) {
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	r := s.client.NewRequest(http.MethodPut, "/v1/auth/token/renew-self")
	r.ClientToken = t.value
	_ = r.SetJSONBody(map[string]int64{"increment": int64(t.ttl / time.Second)})
	resp, err := s.client.RawRequestWithContext(ctx, r) //nolint:staticcheck // see login
	if err != nil {
		closeBody(resp)
		if s.ctx.Err() != nil {
			return
		}
		ae := newAPIError("renew the Vault token", resp, err)
		if ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			// Revoked or expired: drop it; a fetch (or the leases) will
			// need a login.
			s.log.Info("the Vault token can no longer be renewed", "error", ae.Error())
			s.mu.Lock()
			leases := len(s.leases)
			s.mu.Unlock()
			if leases > 0 {
				lctx, lcancel := context.WithTimeout(s.ctx, requestTimeout)
				_, lerr := s.login(lctx, t, "token renewal refused")
				lcancel()
				if lerr == nil || s.ctx.Err() != nil {
					return
				}
				s.log.Warn("logging in again failed", "error", lerr.Error())
			}
			s.setToken(t, nil)
			return
		}
		s.log.Warn("renewing the Vault token failed; will retry", "error", ae.Error())
		s.retryLater(t)
		return
	}
	sec, err := vaultapi.ParseSecret(resp.Body)
	closeBody(resp)
	if err != nil || sec == nil || sec.Auth == nil {
		s.log.Warn("renewing the Vault token: the answer carries no auth")
		s.retryLater(t)
		return
	}
	now := time.Now()
	nt := *t
	granted := time.Duration(sec.Auth.LeaseDuration) * time.Second
	nt.expires = now.Add(granted)
	nt.renewAt = renewPoint(now, granted)
	nt.renewable = sec.Auth.Renewable
	nt.final = !sec.Auth.Renewable || granted < t.ttl
	s.log.Debug("renewed the Vault token", "tokenTTL", granted.String(), "final", nt.final)
	s.setToken(t, &nt)
}

// setToken replaces old with nt (nil drops it) if old is still current.
func (s *session) setToken(old, nt *token) {
	s.mu.Lock()
	if s.tok == old {
		s.tok = nt
	}
	s.mu.Unlock()
}

// retryLater schedules another attempt on t while it lives.
func (s *session) retryLater(t *token) {
	remaining := time.Until(t.expires)
	if remaining <= 0 {
		s.setToken(t, nil)
		return
	}
	nt := *t
	nt.renewAt = time.Now().Add(retryDelay(remaining))
	s.setToken(t, &nt)
}
