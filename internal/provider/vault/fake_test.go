package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
)

// testJWT is the service-account token unit tests log in with; it must
// never appear in a log line or error.
const testJWT = "eyJhbGciOiJSUzI1NiJ9.unit-test-service-account-token.c2lnbmF0dXJl"

// fakeReq is a request the fake Vault received.
type fakeReq struct {
	Method, Path string
	Query        url.Values
	Token        string
	Namespace    string
	Body         map[string]any
}

// fakeVault answers Vault API requests from recorded bodies: logins at
// any auth/<mount>/login issue numbered tokens, other paths are routed to
// handlers, the rest get Vault's 404.
type fakeVault struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []fakeReq
	handlers map[string]func(fakeReq) (int, string)
	logins   int
	// sent counts the response bytes (and secret values) sent.
	sent providertest.Bytes
	// loginTTL and loginRenewable shape the tokens logins issue.
	loginTTL       int
	loginRenewable bool
}

func newFakeVault(t testing.TB) *fakeVault {
	return newFakeVaultWith(t, func(h http.Handler) *httptest.Server { return httptest.NewServer(h) })
}

// newFakeVaultWith lets the caller start the server, e.g. with TLS.
func newFakeVaultWith(t testing.TB, start func(http.Handler) *httptest.Server) *fakeVault {
	f := &fakeVault{t: t, handlers: map[string]func(fakeReq) (int, string){}, loginTTL: 3600, loginRenewable: true}
	f.srv = start(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	req := fakeReq{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Token: r.Header.Get("X-Vault-Token"), Namespace: r.Header.Get("X-Vault-Namespace")}
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &req.Body); err != nil {
			f.t.Errorf("fake vault: %s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	h := f.handlers[r.Method+" "+r.URL.Path]
	f.mu.Unlock()
	status, body := http.StatusNotFound, `{"errors":[]}`
	switch {
	case h != nil:
		status, body = h(req)
	case strings.HasPrefix(r.URL.Path, "/v1/auth/") && strings.HasSuffix(r.URL.Path, "/login") && r.Method == http.MethodPost:
		status, body = f.login(req)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	f.sent.Record([]byte(body))
	_, _ = io.WriteString(w, body)
}

func (f *fakeVault) login(req fakeReq) (int, string) {
	if req.Body["jwt"] != testJWT {
		return http.StatusForbidden, `{"errors":["permission denied"]}`
	}
	f.mu.Lock()
	f.logins++
	n, ttl, renewable := f.logins, f.loginTTL, f.loginRenewable
	f.mu.Unlock()
	return http.StatusOK, fmt.Sprintf(`{"request_id":"login-%d","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"hvs.token-%d","accessor":"acc-%d","policies":["default","app"],"token_policies":["default","app"],"metadata":{"role":%q},"lease_duration":%d,"renewable":%v,"entity_id":"e","token_type":"service","orphan":true}}`,
		n, n, n, req.Body["role"], ttl, renewable)
}

// reply routes method+path to a fixed answer.
func (f *fakeVault) reply(method, path string, status int, body string) {
	f.handle(method, path, func(fakeReq) (int, string) { return status, body })
}

func (f *fakeVault) handle(method, path string, h func(fakeReq) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[method+" "+path] = h
}

// requests returns the requests to method+path so far.
func (f *fakeVault) requests(method, path string) []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeReq
	for _, r := range f.reqs {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeVault) count(method, path string) int { return len(f.requests(method, path)) }

func (f *fakeVault) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins
}

// unitEnv keeps the test's VAULT_* environment from leaking in and turns
// off the client's own retries so that 5xx answers come back at once.
func unitEnv(t *testing.T) {
	for _, k := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_TLS_SERVER_NAME", "VAULT_SKIP_VERIFY"} {
		t.Setenv(k, "")
	}
	t.Setenv("VAULT_MAX_RETRIES", "0")
}

// unitClass parses a vault class pointing at addr.
func unitClass(t testing.TB, addr string, params map[string]string) *spc.Class {
	t.Helper()
	p := map[string]string{"roleName": "app"}
	if addr != "" {
		p["vaultAddress"] = addr
	}
	for k, v := range params {
		p[k] = v
	}
	c, err := spc.ParseSpec("team", "cls", "vault", p)
	if err != nil {
		t.Fatalf("parse class: %v", err)
	}
	return c
}

func unitRequest(c *spc.Class, current map[string]string) provider.Request {
	return provider.Request{
		Class:      c,
		Identity:   identity.Identity{Pod: identity.Pod{Namespace: "team", Name: "web-0", UID: "u1", ServiceAccount: "app"}, Tokens: identity.StaticTokens{"": testJWT, "vault": testJWT}},
		Current:    current,
		Permission: 0o644,
	}
}

// unitProvider is a Provider logging into a capture that must stay free
// of the given secrets and the test JWT. Unless opts sets a clock, it runs
// on a fake clock (fakeClock) that only the test moves, so renewals and
// retries happen when the test steps to them, not after real waits.
func unitProvider(t *testing.T, opts Options, secrets ...string) (*Provider, *logCapture) {
	log, logs := newLogCapture(t, append(secrets, testJWT, "hvs.token-")...)
	opts.Logger = log
	if opts.Clock == nil {
		opts.Clock = clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	p := New(opts)
	t.Cleanup(func() { _ = p.Close() })
	return p, logs
}

// fakeClock is the fake clock of a unitProvider.
func fakeClock(t *testing.T, p *Provider) *clocktesting.FakeClock {
	t.Helper()
	c, ok := p.clock.(*clocktesting.FakeClock)
	if !ok {
		t.Fatalf("the provider runs on a %T, not a fake clock", p.clock)
	}
	return c
}

// stepWhen steps clk by d once the provider's background loops have set
// their timers (waiters of them wait on clk) and ready holds, so that a
// step never passes a renewal point that is still to be scheduled. It
// polls for the condition; nothing waits on the real clock but that.
func stepWhen(t *testing.T, clk *clocktesting.FakeClock, waiters int, ready func() bool, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Waiters() != waiters || (ready != nil && !ready()) {
		if time.Now().After(deadline) {
			t.Fatalf("at %s: %d timers wait on the clock, want %d (or the condition before the step does not hold)", clk.Now().Format(time.StampMilli), clk.Waiters(), waiters)
		}
		time.Sleep(time.Millisecond)
	}
	clk.Step(d)
}

func unitFetch(t *testing.T, p *Provider, logs *logCapture, req provider.Request) ([]provider.Object, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	objs, err := p.Fetch(ctx, req)
	logs.record(err)
	return objs, err
}
