package vault

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// TestErrors covers every way a fetch fails: the reason, that the message
// names class and object and Vault's cause, and that no token or value
// leaks into it.
func TestErrors(t *testing.T) {
	const path = "/v1/secret/data/app"
	for name, tc := range map[string]struct {
		setup   func(fv *fakeVault)
		params  map[string]string
		req     func(r *provider.Request)
		ctx     func(context.Context) context.Context
		object  string
		reason  provider.Reason
		want    []string
		forbid  []string
		logins  int // -1: don't check
		closed  bool
		noClass bool
	}{
		"unknown role": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 400, `{"errors":["invalid role name \"app\""]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{`log in at auth/kubernetes/login as role "app"`, "Vault answered 400", `invalid role name "app"`},
		},
		"login denied": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 403, `{"errors":["service account name not authorized"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"403", "service account name not authorized"},
		},
		"login throttled": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 429, `{"errors":["rate limit quota exceeded"]}`)
			},
			reason: provider.ReasonThrottled, want: []string{"429", "rate limit quota exceeded"},
		},
		"login server error": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 500, `{"errors":["internal error"]}`)
			},
			reason: provider.ReasonUnavailable, want: []string{"500", "internal error"},
		},
		"login unauthenticated": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 401, `{"errors":["bad token"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"401", "bad token"},
		},
		"login at a mount without an auth method": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 404, `{"errors":["no handler for route"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"404", "no handler for route"},
		},
		"login conflict": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 409, `{"errors":["odd"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"409", "odd"},
		},
		"login precondition failed": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 412, `{"errors":["odd"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"412", "odd"},
		},
		"login bad gateway": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 502, `{"errors":["odd"]}`)
			},
			reason: provider.ReasonUnavailable, want: []string{"502", "odd"},
		},
		"login answer without token": {
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/kubernetes/login", 200, `{"request_id":"x","auth":null}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"carries no client token"},
		},
		"custom auth mount": {
			params: map[string]string{"vaultAuthMountPath": "jwt-team"},
			setup: func(fv *fakeVault) {
				fv.reply("POST", "/v1/auth/jwt-team/login", 400, `{"errors":["role \"app\" could not be found"]}`)
			},
			reason: provider.ReasonUnauthenticated, want: []string{"auth/jwt-team/login", "could not be found"},
		},
		"no token for the audience": {
			params: map[string]string{"audience": "other"},
			reason: provider.ReasonUnauthenticated, want: []string{`service-account token for audience "other"`, "no service-account token"},
			logins: -1,
		},
		// The audience Decide chose (identity.VaultAudience: "vault"
		// among the token requests) is the one the login asks for.
		"decided audience vault, only a default token": {
			req: func(r *provider.Request) {
				r.Identity.Cloud.VaultAudience = identity.AudienceVault
				r.Identity.Tokens = identity.StaticTokens{"": testJWT}
			},
			reason: provider.ReasonUnauthenticated, want: []string{`service-account token for audience "vault"`, "no service-account token"},
			logins: -1,
		},
		"no token source": {
			req:    func(r *provider.Request) { r.Identity.Tokens = nil },
			reason: provider.ReasonUnauthenticated, want: []string{"service-account token for audience (API server default)", "no token source"},
			logins: -1,
		},
		"token source fails": {
			req: func(r *provider.Request) {
				r.Identity.Tokens = identity.FuncTokens(func(context.Context, string) (string, error) {
					return "", errors.New("TokenRequest for team/app: forbidden")
				})
			},
			reason: provider.ReasonUnauthenticated, want: []string{"TokenRequest for team/app: forbidden"},
			logins: -1,
		},
		"policy denies after a second login": {
			setup: func(fv *fakeVault) {
				fv.reply("GET", path, 403, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
			},
			reason: provider.ReasonAccessDenied, want: []string{"GET /v1/secret/data/app", "403", "permission denied"},
			logins: 2,
		},
		"not found": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 404, `{"errors":[]}`) },
			reason: provider.ReasonNotFound, want: []string{"GET /v1/secret/data/app", "404"},
		},
		"not found without data/ gets a hint": {
			params: map[string]string{"objects": "- {objectName: out, secretPath: secret/app, secretKey: password}"},
			reason: provider.ReasonNotFound, want: []string{"GET /v1/secret/app", "404", "<mount>/data/<name>"},
		},
		"bad request": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 400, `{"errors":["invalid version"]}`) },
			reason: provider.ReasonInvalidConfig, want: []string{"400", "invalid version"},
		},
		"read unauthenticated": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 401, `{"errors":["odd"]}`) },
			reason: provider.ReasonUnauthenticated, want: []string{"401", "odd"}, logins: 1,
		},
		"read method not allowed": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 405, `{"errors":["unsupported operation"]}`) },
			reason: provider.ReasonInvalidConfig, want: []string{"405", "unsupported operation"},
		},
		"read precondition failed": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 412, `{"errors":["odd"]}`) },
			reason: provider.ReasonInvalidConfig, want: []string{"412", "odd"},
		},
		"read not implemented": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 501, `{"errors":["odd"]}`) },
			reason: provider.ReasonUnavailable, want: []string{"501", "odd"},
		},
		"throttled": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 429, `{"errors":["rate limit quota exceeded"]}`) },
			reason: provider.ReasonThrottled, want: []string{"429"},
		},
		"sealed": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 503, `{"errors":["Vault is sealed"]}`) },
			reason: provider.ReasonUnavailable, want: []string{"503", "Vault is sealed"},
		},
		"proxy error page is not quoted": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 502, "<html><body>bad gateway p@ss-in-page</body></html>") },
			reason: provider.ReasonUnavailable, want: []string{"502", "a non-Vault error body"}, forbid: []string{"<html>", "p@ss-in-page"},
		},
		"long error text is cut": {
			setup:  func(fv *fakeVault) { fv.reply("GET", path, 400, `{"errors":["`+strings.Repeat("x", 1000)+`"]}`) },
			reason: provider.ReasonInvalidConfig, want: []string{strings.Repeat("x", 300) + "..."}, forbid: []string{strings.Repeat("x", 301)},
		},
		"canceled": {
			ctx: func(ctx context.Context) context.Context {
				c, cancel := context.WithCancel(ctx)
				cancel()
				return c
			},
			reason: provider.ReasonUnavailable, want: []string{"context canceled"}, logins: -1,
		},
		"CA file missing": {
			params: map[string]string{"vaultCACertPath": filepath.Join(t.TempDir(), "missing-ca.pem")},
			reason: provider.ReasonInvalidConfig, want: []string{"configure TLS", "missing-ca.pem"}, object: "-", logins: -1,
		},
		"class without vault parameters": {
			noClass: true, reason: provider.ReasonInvalidConfig, want: []string{"no vault parameters"}, object: "-", logins: -1,
		},
		"closed provider": {
			closed: true, reason: provider.ReasonUnavailable, want: []string{"closed"}, object: "-", logins: -1,
		},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			fv.reply("GET", path, 200, bodyKV2)
			if tc.setup != nil {
				tc.setup(fv)
			}
			p, logs := unitProvider(t, Options{}, append(contentSecrets, "p@ss-in-page")...)
			params := map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"}
			for k, v := range tc.params {
				params[k] = v
			}
			c := unitClass(t, fv.srv.URL, params)
			req := unitRequest(c, nil)
			if tc.req != nil {
				tc.req(&req)
			}
			if tc.noClass {
				req.Class.Vault = nil
			}
			if tc.closed {
				_ = p.Close()
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			objs, err := p.Fetch(ctx, req)
			logs.record(err)
			if err == nil {
				t.Fatalf("fetch succeeded with %d objects", len(objs))
			}
			object := "out"
			if tc.object == "-" {
				object = ""
			}
			providerError(t, err, c.Key(), object, tc.reason, tc.want...)
			for _, f := range tc.forbid {
				if strings.Contains(err.Error(), f) {
					t.Errorf("error contains %q", f)
				}
			}
			want := tc.logins
			if want == 0 {
				want = 1
				if tc.reason == provider.ReasonUnauthenticated || strings.Contains(name, "login") {
					want = 0 // the login itself failed
				}
			}
			if want >= 0 && fv.loginCount() != want {
				t.Errorf("%d successful logins, want %d", fv.loginCount(), want)
			}
		})
	}
}

// TestConnectionRefused: a Vault that is not there is Unavailable, and
// the message names the address.
func TestConnectionRefused(t *testing.T) {
	unitEnv(t)
	fv := newFakeVault(t)
	addr := fv.srv.URL
	fv.srv.Close()
	p, logs := unitProvider(t, Options{})
	c := unitClass(t, addr, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
	_, err := unitFetch(t, p, logs, unitRequest(c, nil))
	providerError(t, err, c.Key(), "out", provider.ReasonUnavailable, "log in at auth/kubernetes/login", "connection refused", strings.TrimPrefix(addr, "http://"))
}

// TestClassifyStatus pins the Reason of a read and of a login Vault
// answered with a status of every class, and of a request that got no
// answer; and that the message names the request.
func TestClassifyStatus(t *testing.T) {
	cases := map[string]struct {
		err    error
		reason provider.Reason
	}{
		"no answer":        {&apiError{Op: "GET /v1/x", Err: errors.New("connection refused")}, provider.ReasonUnavailable},
		"100":              {&apiError{Op: "GET /v1/x", Status: 100}, provider.ReasonUnknown},
		"200":              {&apiError{Op: "GET /v1/x", Status: 200}, provider.ReasonUnknown},
		"307":              {&apiError{Op: "GET /v1/x", Status: 307}, provider.ReasonUnknown},
		"400":              {&apiError{Op: "GET /v1/x", Status: 400}, provider.ReasonInvalidConfig},
		"401":              {&apiError{Op: "GET /v1/x", Status: 401}, provider.ReasonUnauthenticated},
		"402":              {&apiError{Op: "GET /v1/x", Status: 402}, provider.ReasonInvalidConfig},
		"403":              {&apiError{Op: "GET /v1/x", Status: 403}, provider.ReasonAccessDenied},
		"404":              {&apiError{Op: "GET /v1/x", Status: 404}, provider.ReasonNotFound},
		"405":              {&apiError{Op: "GET /v1/x", Status: 405}, provider.ReasonInvalidConfig},
		"408":              {&apiError{Op: "GET /v1/x", Status: 408}, provider.ReasonInvalidConfig},
		"412":              {&apiError{Op: "GET /v1/x", Status: 412}, provider.ReasonInvalidConfig},
		"429":              {&apiError{Op: "GET /v1/x", Status: 429}, provider.ReasonThrottled},
		"499":              {&apiError{Op: "GET /v1/x", Status: 499}, provider.ReasonInvalidConfig},
		"500":              {&apiError{Op: "GET /v1/x", Status: 500}, provider.ReasonUnavailable},
		"503":              {&apiError{Op: "GET /v1/x", Status: 503}, provider.ReasonUnavailable},
		"599":              {&apiError{Op: "GET /v1/x", Status: 599}, provider.ReasonUnavailable},
		"600":              {&apiError{Op: "GET /v1/x", Status: 600}, provider.ReasonUnavailable},
		"canceled":         {&apiError{Op: "GET /v1/x", Err: context.Canceled}, provider.ReasonUnavailable},
		"login, no answer": {&apiError{Op: "log in", Err: errors.New("connection refused"), login: true}, provider.ReasonUnavailable},
		"login 400":        {&apiError{Op: "log in", Status: 400, login: true}, provider.ReasonUnauthenticated},
		"login 401":        {&apiError{Op: "log in", Status: 401, login: true}, provider.ReasonUnauthenticated},
		"login 403":        {&apiError{Op: "log in", Status: 403, login: true}, provider.ReasonUnauthenticated},
		"login 404":        {&apiError{Op: "log in", Status: 404, login: true}, provider.ReasonUnauthenticated},
		"login 405":        {&apiError{Op: "log in", Status: 405, login: true}, provider.ReasonUnauthenticated},
		"login 412":        {&apiError{Op: "log in", Status: 412, login: true}, provider.ReasonUnauthenticated},
		"login 429":        {&apiError{Op: "log in", Status: 429, login: true}, provider.ReasonThrottled},
		"login 499":        {&apiError{Op: "log in", Status: 499, login: true}, provider.ReasonUnauthenticated},
		"login 500":        {&apiError{Op: "log in", Status: 500, login: true}, provider.ReasonUnavailable},
		"login 503":        {&apiError{Op: "log in", Status: 503, login: true}, provider.ReasonUnavailable},
		"login 600":        {&apiError{Op: "log in", Status: 600, login: true}, provider.ReasonUnavailable},
		"client error":     {errors.New("connection refused"), provider.ReasonUnavailable},
		"decided":          {provider.WithReason(provider.ReasonInvalidContent, errors.New("not Vault JSON")), provider.ReasonInvalidContent},
		"provider error":   {&provider.Error{Reason: provider.ReasonNotFound, Err: errors.New("x")}, provider.ReasonNotFound},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := classify("GET /v1/x", tc.err)
			if got := reasonOf(err); got != tc.reason {
				t.Errorf("reason %s, want %s", got, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "GET /v1/x") && !strings.HasPrefix(err.Error(), "log in: ") {
				t.Errorf("message %q does not name the request", err.Error())
			}
		})
	}
}
