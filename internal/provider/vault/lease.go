package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/ssinjector/ssi/internal/spc"
)

// groupKey is what responses are shared by within a fetch: the request
// path (with query) and method, as upstream (secretArgs are not part of it).
type groupKey struct {
	path   string
	method string
}

func groupOf(o *spc.VaultObject) groupKey {
	p := o.APIPath
	if len(o.Query) > 0 {
		p += "?" + o.Query.Encode()
	}
	return groupKey{path: p, method: o.Method}
}

// response is one Vault answer shared by the objects of a group.
type response struct {
	secret *vaultapi.Secret
	// expires is when its lease ends; zero without a lease.
	expires time.Time
}

// leaseKey identifies a leased response: the class and the group.
type leaseKey struct {
	class string
	group groupKey
}

// lease is a response that came with a lease. It is served to later
// fetches while the lease lives, and renewed in the background.
type lease struct {
	key  leaseKey
	id   string
	path string
	// args fingerprints the secretArgs it was read with; other args need
	// a new read.
	args   string
	secret *vaultapi.Secret
	// gen is the token generation that read it.
	gen int
	// ttl is the first grant, and the increment renewals ask for.
	ttl       time.Duration
	expires   time.Time
	renewable bool
	// due is set when the lease can no longer be extended (or its token
	// was replaced): the next fetch reads the secret again.
	due    bool
	cancel context.CancelFunc
}

func argsOf(o *spc.VaultObject) string {
	if o.SecretArgs == nil {
		return ""
	}
	b, err := json.Marshal(o.SecretArgs)
	if err != nil {
		return "unencodable"
	}
	return string(b)
}

// get returns the response for the object's group: the live leased
// response of an earlier fetch if there is one, else a new read.
func (s *session) get(ctx context.Context, class string, o *spc.VaultObject, g groupKey) (*response, error) {
	lk := leaseKey{class: class, group: g}
	args := argsOf(o)
	s.mu.Lock()
	if l := s.leases[lk]; l != nil && !l.due && l.gen == s.gen && l.args == args && s.p.clock.Now().Before(l.expires) {
		sec, exp := l.secret, l.expires
		s.mu.Unlock()
		return &response{secret: sec, expires: exp}, nil
	}
	s.mu.Unlock()
	sec, gen, err := s.read(ctx, o)
	if err != nil {
		return nil, err
	}
	resp := &response{secret: sec}
	if sec.LeaseID != "" && sec.LeaseDuration > 0 {
		resp.expires = s.p.clock.Now().Add(time.Duration(sec.LeaseDuration) * time.Second)
		s.track(lk, sec, gen, args)
	} else {
		s.untrack(lk)
	}
	return resp, nil
}

// track keeps a leased response and starts renewing its lease, replacing
// (without revoking) any earlier lease of the same group.
func (s *session) track(k leaseKey, sec *vaultapi.Secret, gen int, args string) {
	now := s.p.clock.Now()
	ttl := time.Duration(sec.LeaseDuration) * time.Second
	ctx, cancel := context.WithCancel(s.ctx)
	l := &lease{
		key: k, id: sec.LeaseID, path: k.group.path, args: args, secret: sec, gen: gen,
		ttl: ttl, expires: now.Add(ttl), renewable: sec.Renewable, cancel: cancel,
	}
	s.mu.Lock()
	if old := s.leases[k]; old != nil {
		old.cancel()
	}
	s.leases[k] = l
	s.mu.Unlock()
	s.log.Info("holding a leased secret; its lease is renewed instead of reading it again", "path", l.path, "leaseTTL", ttl.String(), "renewable", l.renewable)
	if !s.p.goBackground(func() { s.runLease(ctx, l) }) {
		cancel()
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// untrack forgets a group's lease, if any.
func (s *session) untrack(k leaseKey) {
	s.mu.Lock()
	if old := s.leases[k]; old != nil {
		old.cancel()
		delete(s.leases, k)
	}
	s.mu.Unlock()
}

// runLease renews l two thirds into each grant. When a renewal grants
// less than asked (the maximum TTL is near), the lease is not renewable,
// renewal is refused, or renewal keeps failing until the lease is about to
// end, the lease is marked due two thirds into what is left and the agent is
// woken to read the secret again while the old credentials still work.
func (s *session) runLease(ctx context.Context, l *lease) {
	s.mu.Lock()
	next := renewPoint(s.p.clock.Now(), l.ttl)
	s.mu.Unlock()
	for {
		t, fire := s.p.timerUntil(next)
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-fire:
		}
		s.mu.Lock()
		if s.leases[l.key] != l || l.due {
			s.mu.Unlock()
			return
		}
		renewable, expires, gen := l.renewable, l.expires, l.gen
		tok := s.tok
		s.mu.Unlock()
		if !renewable {
			s.leaseDue(l, "the lease cannot be extended any further")
			return
		}
		if tok == nil || tok.gen != gen {
			s.leaseDue(l, "the token that read it was replaced")
			return
		}
		granted, stillRenewable, err := s.renewLease(ctx, tok, l)
		if ctx.Err() != nil {
			return
		}
		now := s.p.clock.Now()
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
				s.leaseDue(l, "Vault refused to renew it: "+ae.Error())
				return
			}
			remaining := expires.Sub(now)
			if remaining <= time.Second {
				s.leaseDue(l, "renewing failed until it expired: "+err.Error())
				return
			}
			s.log.Warn("renewing a lease failed; will retry", "path", l.path, "error", err.Error())
			next = now.Add(retryDelay(remaining))
			continue
		}
		s.mu.Lock()
		l.expires = now.Add(granted)
		if !stillRenewable || granted < l.ttl {
			l.renewable = false
		}
		final := !l.renewable
		s.mu.Unlock()
		s.log.Debug("renewed a lease", "path", l.path, "leaseTTL", granted.String(), "final", final)
		next = renewPoint(now, granted)
	}
}

// renewLease extends l by its first grant with sys/leases/renew.
func (s *session) renewLease(ctx context.Context, tok *token, l *lease) (time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r := s.client.NewRequest(http.MethodPut, "/v1/sys/leases/renew")
	r.ClientToken = tok.value
	_ = r.SetJSONBody(map[string]any{"lease_id": l.id, "increment": int64(l.ttl / time.Second)})
	resp, err := s.client.RawRequestWithContext(ctx, r) //nolint:staticcheck // see session.login
	if err != nil {
		closeBody(resp)
		return 0, false, newAPIError("renew the lease of "+l.path, resp, err)
	}
	sec, err := vaultapi.ParseSecret(resp.Body)
	closeBody(resp)
	if err != nil || sec == nil {
		return 0, false, &apiError{Op: "renew the lease of " + l.path, Err: errNoLease}
	}
	return time.Duration(sec.LeaseDuration) * time.Second, sec.Renewable, nil
}

// leaseDue marks l for a new read and wakes the agent.
func (s *session) leaseDue(l *lease, why string) {
	s.mu.Lock()
	mark := s.leases[l.key] == l && !l.due
	if mark {
		l.due = true
	}
	s.mu.Unlock()
	if mark {
		s.log.Info("a lease can no longer be renewed; the secret will be read again", "path", l.path, "reason", why)
		s.p.signal()
	}
}
