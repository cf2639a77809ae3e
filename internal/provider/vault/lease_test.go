package vault

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

const dbObjects = `
- objectName: user
  secretPath: database/creds/app
  secretKey: username
- objectName: pass
  secretPath: database/creds/app
  secretKey: password
`

// dynamicSecret serves database/creds/app with numbered credentials and a
// lease of ttl seconds.
func dynamicSecret(fv *fakeVault, ttl int, renewable bool) func() int {
	var mu sync.Mutex
	n := 0
	fv.handle("GET", "/v1/database/creds/app", func(fakeReq) (int, string) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		return http.StatusOK, fmt.Sprintf(`{"request_id":"r%d","lease_id":"database/creds/app/lease-%d","renewable":%v,"lease_duration":%d,"data":{"username":"v-app-%d","password":"pw-%d-dynamic-secret"},"warnings":null}`, i, i, renewable, ttl, i, i)
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func waitWake(t *testing.T, p *Provider, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.Wake():
	case <-time.After(timeout):
		t.Fatalf("no wake-up within %s", timeout)
	}
}

func byID(objs []provider.Object) map[string]provider.Object {
	m := map[string]provider.Object{}
	for _, o := range objs {
		m[o.ID] = o
	}
	return m
}

// TestLeases covers how leased responses are kept, renewed and given up,
// on the fake clock: each case steps it to the renewal and retry points
// the provider must schedule, and checks when the renewals reached Vault.
func TestLeases(t *testing.T) {
	for name, tc := range map[string]struct {
		ttl       int
		renewable bool
		// renew answers the n-th renewal (1-based).
		renew func(n int) (int, string)
		// steps move the clock, each once the previous one's renewal is
		// done and the lease's loop waits again; the wake-up must come
		// after the last.
		steps []time.Duration
		// wantRenewalsAt are the times of the renewals, from the read.
		wantRenewalsAt []time.Duration
	}{
		"renewed two thirds into each grant until the maximum TTL caps it": {
			ttl: 3, renewable: true,
			renew: func(n int) (int, string) {
				granted := 3
				if n >= 2 {
					granted = 1 // the maximum TTL is near
				}
				return 200, fmt.Sprintf(`{"lease_id":"x","renewable":true,"lease_duration":%d,"data":null}`, granted)
			},
			// Renewals at 2s and 4s; the second grants 1s, less than asked,
			// so the lease is due two thirds into that second.
			steps:          []time.Duration{2 * time.Second, 2 * time.Second, time.Second * 2 / 3},
			wantRenewalsAt: []time.Duration{2 * time.Second, 4 * time.Second},
		},
		"renewal refused": {
			ttl: 3, renewable: true,
			renew: func(int) (int, string) {
				return 400, `{"errors":["lease not found or lease is not renewable"]}`
			},
			steps:          []time.Duration{2 * time.Second},
			wantRenewalsAt: []time.Duration{2 * time.Second},
		},
		"renewal retried after failures until the lease is about to end": {
			ttl: 9, renewable: true,
			renew: func(int) (int, string) { return 500, `{"errors":["internal error"]}` },
			// First at 6s (two thirds of 9s), then a third of what is
			// left (1s, 2/3s), at least 500ms, until 1s or less is left.
			steps: []time.Duration{6 * time.Second, time.Second, time.Second * 2 / 3, 500 * time.Millisecond},
			wantRenewalsAt: []time.Duration{6 * time.Second, 7 * time.Second, 7*time.Second + time.Second*2/3,
				7*time.Second + time.Second*2/3 + 500*time.Millisecond},
		},
		"not renewable": {
			ttl: 3, renewable: false,
			renew: func(int) (int, string) { return 500, `{"errors":["must not be called"]}` },
			steps: []time.Duration{2 * time.Second},
		},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			reads := dynamicSecret(fv, tc.ttl, tc.renewable)
			p, logs := unitProvider(t, Options{}, "pw-1-dynamic-secret", "pw-2-dynamic-secret", "lease-1")
			clk := fakeClock(t, p)
			start := clk.Now()
			var mu sync.Mutex
			var renewedAt []time.Duration
			renewals := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(renewedAt)
			}
			fv.handle("PUT", "/v1/sys/leases/renew", func(r fakeReq) (int, string) {
				mu.Lock()
				renewedAt = append(renewedAt, clk.Since(start))
				n := len(renewedAt)
				mu.Unlock()
				if r.Body["lease_id"] != "database/creds/app/lease-1" || r.Body["increment"] != float64(tc.ttl) || r.Token != "hvs.token-1" {
					t.Errorf("renewal request %+v", r.Body)
				}
				return tc.renew(n)
			})
			c := unitClass(t, fv.srv.URL, map[string]string{"objects": dbObjects})
			objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if err != nil {
				t.Fatal(err)
			}
			first := byID(objs)
			if string(first["user"].Files[0].Data) != "v-app-1" || string(first["pass"].Files[0].Data) != "pw-1-dynamic-secret" {
				t.Fatalf("first read: %q", first["user"].Files[0].Data)
			}
			cur := provider.Versions(objs)

			// While the lease lives: Unchanged, and no new read.
			again, err := unitFetch(t, p, logs, unitRequest(c, cur))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range again {
				if !o.Unchanged || o.Version != cur[o.ID] {
					t.Errorf("object %s: unchanged=%v while its lease lives", o.ID, o.Unchanged)
				}
			}
			// Without current versions the held response is served again.
			forgot, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := byID(forgot)["user"]; got.Unchanged || string(got.Files[0].Data) != "v-app-1" {
				t.Errorf("fetch without current versions: %+v", got)
			}
			if n := reads(); n != 1 {
				t.Fatalf("%d reads while the lease lives, want 1", n)
			}

			// The token's renewal (an hour's token) and the lease's wait on
			// the clock.
			for i, d := range tc.steps {
				stepWhen(t, clk, 2, func() bool { return renewals() == i }, d)
				if i < len(tc.steps)-1 {
					select {
					case <-p.Wake():
						t.Fatalf("woken at %s, before the last step", clk.Since(start))
					default:
					}
				}
			}
			waitWake(t, p, 10*time.Second)
			mu.Lock()
			got := append([]time.Duration(nil), renewedAt...)
			mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.wantRenewalsAt) {
				t.Errorf("renewals at %v, want %v", got, tc.wantRenewalsAt)
			}
			next, err := unitFetch(t, p, logs, unitRequest(c, cur))
			if err != nil {
				t.Fatal(err)
			}
			m := byID(next)
			if m["user"].Unchanged || string(m["user"].Files[0].Data) != "v-app-2" || m["user"].Version == cur["user"] {
				t.Errorf("after the wake-up: unchanged=%v", m["user"].Unchanged)
			}
			if n := reads(); n != 2 {
				t.Errorf("%d reads, want 2", n)
			}
		})
	}
}

// TestTokenLifecycle covers token renewal, giving up at the maximum TTL,
// re-login when renewal is refused while leases depend on the token, and
// Close.
func TestTokenLifecycle(t *testing.T) {
	t.Run("renewed, then replaced by a fetch after its maximum TTL", func(t *testing.T) {
		unitEnv(t)
		fv := newFakeVault(t)
		fv.loginTTL = 3
		fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
		p, logs := unitProvider(t, Options{}, contentSecrets...)
		clk := fakeClock(t, p)
		start := clk.Now()
		var mu sync.Mutex
		var renewedAt []time.Duration
		renewals := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(renewedAt)
		}
		fv.handle("PUT", "/v1/auth/token/renew-self", func(r fakeReq) (int, string) {
			mu.Lock()
			renewedAt = append(renewedAt, clk.Since(start))
			n := len(renewedAt)
			mu.Unlock()
			if r.Token != "hvs.token-1" || r.Body["increment"] != float64(3) {
				t.Errorf("renew-self with token %q body %v", r.Token, r.Body)
			}
			granted := 3
			if n >= 2 {
				granted = 1
			}
			return 200, fmt.Sprintf(`{"auth":{"client_token":"hvs.token-1","lease_duration":%d,"renewable":true}}`, granted)
		})
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
		if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
			t.Fatal(err)
		}
		// Renewed at 2s and 4s (two thirds into each grant); the second
		// grants 1s, less than asked, so the token is final and its last
		// third starts 2/3s later.
		stepWhen(t, clk, 1, func() bool { return renewals() == 0 }, 2*time.Second)
		stepWhen(t, clk, 1, func() bool { return renewals() == 1 }, 2*time.Second)
		stepWhen(t, clk, 1, func() bool { return renewals() == 2 }, time.Second*2/3)
		// No lease needs the token between fetches: the loop waits for
		// one (or a new token) instead of logging in in the background.
		stepWhen(t, clk, 0, nil, 0)
		if n := fv.loginCount(); n != 1 {
			t.Fatalf("%d logins, want 1: logged in again in the background without leases", n)
		}
		if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
			t.Fatal(err)
		}
		if n := fv.loginCount(); n != 1 {
			t.Errorf("%d logins at the start of the final token's last third, want 1", n)
		}
		// Past it, a fetch logs in again.
		clk.Step(time.Millisecond)
		if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
			t.Fatal(err)
		}
		if n := fv.loginCount(); n != 2 {
			t.Errorf("%d logins in the final token's last third, want 2", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []time.Duration{2 * time.Second, 4 * time.Second}; fmt.Sprint(renewedAt) != fmt.Sprint(want) {
			t.Errorf("renewals at %v, want %v (the second granted less than asked)", renewedAt, want)
		}
	})

	t.Run("refused renewal with leases logs in again and wakes", func(t *testing.T) {
		unitEnv(t)
		fv := newFakeVault(t)
		fv.loginTTL = 2
		reads := dynamicSecret(fv, 3600, true)
		fv.reply("PUT", "/v1/auth/token/renew-self", 403, `{"errors":["permission denied"]}`)
		p, logs := unitProvider(t, Options{}, "pw-1-dynamic-secret", "pw-2-dynamic-secret")
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": dbObjects})
		objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
		if err != nil {
			t.Fatal(err)
		}
		// The token (2s) is renewed two thirds in; the lease (an hour)
		// waits too.
		stepWhen(t, fakeClock(t, p), 2, nil, 2*time.Second*2/3)
		waitWake(t, p, 10*time.Second)
		if n := fv.count("PUT", "/v1/auth/token/renew-self"); n != 1 {
			t.Errorf("%d token renewals, want 1", n)
		}
		if n := fv.loginCount(); n != 2 {
			t.Errorf("%d logins, want 2 (the background re-login)", n)
		}
		next, err := unitFetch(t, p, logs, unitRequest(c, provider.Versions(objs)))
		if err != nil {
			t.Fatal(err)
		}
		if u := byID(next)["user"]; u.Unchanged || string(u.Files[0].Data) != "v-app-2" {
			t.Errorf("the lease of the revoked token was served again")
		}
		if r := fv.requests("GET", "/v1/database/creds/app"); reads() != 2 || r[1].Token != "hvs.token-2" {
			t.Errorf("second read with %q", r[len(r)-1].Token)
		}
	})

	t.Run("idle sessions are dropped", func(t *testing.T) {
		unitEnv(t)
		fv := newFakeVault(t)
		fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
		p, logs := unitProvider(t, Options{IdleTimeout: time.Nanosecond}, contentSecrets...)
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
		podA, podB := unitRequest(c, nil), unitRequest(c, nil)
		podB.Identity = identity.Identity{Pod: identity.Pod{Namespace: "team", Name: "web-1", UID: "u2", ServiceAccount: "app"}, Tokens: podA.Identity.Tokens}
		clk := fakeClock(t, p)
		for _, r := range []provider.Request{podA, podB, podA} {
			clk.Step(time.Millisecond)
			if _, err := unitFetch(t, p, logs, r); err != nil {
				t.Fatal(err)
			}
		}
		if n := fv.loginCount(); n != 3 {
			t.Errorf("%d logins, want 3 (pod A's session was dropped while idle)", n)
		}
	})

	t.Run("forgotten pods are dropped", func(t *testing.T) {
		unitEnv(t)
		// Connections the server holds open, kept alive by the clients.
		var open atomic.Int64
		fv := newFakeVaultWith(t, func(h http.Handler) *httptest.Server {
			srv := httptest.NewUnstartedServer(h)
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				switch st {
				case http.StateNew:
					open.Add(1)
				case http.StateClosed, http.StateHijacked:
					open.Add(-1)
				}
			}
			srv.Start()
			return srv
		})
		fv.reply("GET", "/v1/secret/data/app", 200, bodyKV2)
		p, logs := unitProvider(t, Options{}, contentSecrets...)
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
		podA, podB := unitRequest(c, nil), unitRequest(c, nil)
		podB.Identity = identity.Identity{Pod: identity.Pod{Namespace: "team", Name: "web-1", UID: "u2", ServiceAccount: "app"}, Tokens: podA.Identity.Tokens}
		fetch := func(reqs ...provider.Request) {
			t.Helper()
			for _, r := range reqs {
				if _, err := unitFetch(t, p, logs, r); err != nil {
					t.Fatal(err)
				}
			}
		}
		fetch(podA, podB)
		p.mu.Lock()
		var sessA *session
		for k, s := range p.sessions {
			if k.podUID == podA.Identity.Pod.UID {
				sessA = s
			}
		}
		p.mu.Unlock()
		if sessA == nil {
			t.Fatal("no session for pod A after its fetch")
		}
		if n := open.Load(); n != 2 {
			t.Fatalf("%d connections open after two pods' fetches, want 2 (one kept alive per session)", n)
		}
		p.ForgetPod(podA.Identity.Pod.UID)
		waitUntil(t, 10*time.Second, "pod A's connection to close", func() bool { return open.Load() == 1 })
		if sessA.ctx.Err() == nil {
			t.Error("pod A's session still runs its token renewal after ForgetPod")
		}
		p.mu.Lock()
		left := len(p.sessions)
		p.mu.Unlock()
		if left != 1 {
			t.Errorf("%d sessions after forgetting pod A, want 1 (pod B's)", left)
		}
		fetch(podB)
		if n := fv.loginCount(); n != 2 {
			t.Errorf("%d logins, want 2 (pod B's session kept)", n)
		}
		fetch(podA)
		if n := fv.loginCount(); n != 3 {
			t.Errorf("%d logins, want 3 (pod A logs in again once forgotten)", n)
		}
	})

	t.Run("close stops background work", func(t *testing.T) {
		unitEnv(t)
		fv := newFakeVault(t)
		fv.loginTTL = 1
		dynamicSecret(fv, 1, true)
		fv.reply("PUT", "/v1/sys/leases/renew", 200, `{"lease_duration":1,"renewable":true}`)
		fv.reply("PUT", "/v1/auth/token/renew-self", 200, `{"auth":{"client_token":"hvs.token-1","lease_duration":1,"renewable":true}}`)
		p, logs := unitProvider(t, Options{}, "pw-1-dynamic-secret")
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": dbObjects})
		if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
			t.Fatal(err)
		}
		// Token and lease (1s each) are renewed two thirds in.
		stepWhen(t, fakeClock(t, p), 2, nil, time.Second*2/3)
		waitUntil(t, 10*time.Second, "renewals", func() bool {
			return fv.count("PUT", "/v1/sys/leases/renew") > 0 && fv.count("PUT", "/v1/auth/token/renew-self") > 0
		})
		done := make(chan struct{})
		go func() { _ = p.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		if fv.count("PUT", "/v1/sys/leases/revoke") != 0 || fv.count("PUT", "/v1/sys/leases/revoke-prefix") != 0 {
			t.Error("Close revoked something")
		}
	})
}

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
