package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/ssinjector/ssi/internal/provider"
)

var _ provider.Revoker = (*Provider)(nil)

// Revoke implements provider.Revoker, for revoke-on-shutdown: for every
// session it stops the renewals, revokes each dynamic-secret lease it holds
// (sys/leases/revoke, which the token's policy may not allow) and then the
// session's Vault token (auth/token/revoke-self, which Vault's default
// policy allows and which also revokes every lease the token created). A
// VAULT_TOKEN of local mode is the user's and is never revoked, only the
// leases read with it. The provider is closed afterwards: later fetches
// fail as unavailable.
func (p *Provider) Revoke(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	sessions := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		sessions = append(sessions, s)
	}
	p.sessions = map[sessionKey]*session{}
	p.mu.Unlock()
	var errs []error
	for _, s := range sessions {
		s.cancel()
		if err := s.revoke(ctx); err != nil {
			errs = append(errs, err)
		}
		if s.conns != nil {
			s.conns.CloseIdleConnections()
		}
	}
	return errors.Join(errs...)
}

// revoke ends s's leases, then its token.
func (s *session) revoke(ctx context.Context) error {
	s.mu.Lock()
	tok := s.tok
	leases := make([]*lease, 0, len(s.leases))
	for _, l := range s.leases {
		l.cancel()
		leases = append(leases, l)
	}
	s.leases = map[leaseKey]*lease{}
	s.tok = nil
	s.mu.Unlock()
	sort.Slice(leases, func(i, j int) bool { return leases[i].path < leases[j].path })
	if tok == nil {
		if len(leases) > 0 {
			return fmt.Errorf("vault at %s: %d lease(s) not revoked: the session has no token", s.client.Address(), len(leases))
		}
		return nil
	}
	var errs []error
	revoked, refused := 0, 0
	for _, l := range leases {
		err := s.put(ctx, tok, "/v1/sys/leases/revoke", map[string]any{"lease_id": l.id}, "revoke the lease of "+l.path)
		var ae *apiError
		switch {
		case err == nil:
			revoked++
		case !tok.env && errors.As(err, &ae) && ae.Status == http.StatusForbidden:
			// The token's own revocation below ends it too.
			refused++
		default:
			errs = append(errs, err)
		}
	}
	if !tok.env {
		if err := s.put(ctx, tok, "/v1/auth/token/revoke-self", nil, "revoke the agent's Vault token"); err != nil {
			errs = append(errs, err)
			if refused > 0 {
				errs = append(errs, fmt.Errorf("%d lease(s) whose revocation the token's policy refused stay until they expire", refused))
			}
		}
	}
	s.log.Info("revoked on shutdown", "leases", len(leases), "leasesRevokedOneByOne", revoked,
		"leasesRevokedWithToken", refused, "token", !tok.env && len(errs) == 0, "failures", len(errs))
	if len(errs) > 0 {
		return fmt.Errorf("vault at %s: %w", s.client.Address(), errors.Join(errs...))
	}
	return nil
}

// put sends a PUT with the token and an optional JSON body.
func (s *session) put(ctx context.Context, tok *token, path string, body any, op string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r := s.client.NewRequest(http.MethodPut, path)
	r.ClientToken = tok.value
	if body != nil {
		if err := r.SetJSONBody(body); err != nil {
			return &apiError{Op: op, Err: err}
		}
	}
	resp, err := s.client.RawRequestWithContext(ctx, r) //nolint:staticcheck // see session.login
	closeBody(resp)
	if err != nil {
		return newAPIError(op, resp, err)
	}
	return nil
}
