package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

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

// current returns the session's token, logging in when there is none or
// it is about to expire.
func (s *session) current(ctx context.Context) (*token, error) {
	s.mu.Lock()
	t := s.tok
	s.mu.Unlock()
	now := s.p.clock.Now()
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
	if cur.usable(s.p.clock.Now()) && (failed == nil || cur.value != failed.value) {
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
		ae.login = true
		return nil, classify(op, ae)
	}
	sec, err := vaultapi.ParseSecret(resp.Body)
	closeBody(resp)
	if err != nil || sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: Vault's answer carries no client token", op))
	}
	now := s.p.clock.Now()
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
		var timer clock.Timer
		var fire <-chan time.Time
		if t != nil && !t.env && !t.expires.IsZero() {
			timer, fire = s.p.timerUntil(t.renewAt)
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
	now := s.p.clock.Now()
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
	now := s.p.clock.Now()
	remaining := t.expires.Sub(now)
	if remaining <= 0 {
		s.setToken(t, nil)
		return
	}
	nt := *t
	nt.renewAt = now.Add(retryDelay(remaining))
	s.setToken(t, &nt)
}
