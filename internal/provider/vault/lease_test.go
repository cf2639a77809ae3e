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

// TestLeases covers how leased responses are kept, renewed and given up.
func TestLeases(t *testing.T) {
	for name, tc := range map[string]struct {
		ttl       int
		renewable bool
		// renew answers the n-th renewal (1-based) of a lease read at t0.
		renew func(n int, elapsed time.Duration) (int, string)
		// check runs after the wake-up, with the number of renewals.
		wantRenewals func(n int) bool
	}{
		"renewed until the maximum TTL caps it": {
			ttl: 3, renewable: true,
			renew: func(n int, _ time.Duration) (int, string) {
				granted := 3
				if n >= 2 {
					granted = 1 // the maximum TTL is near
				}
				return 200, fmt.Sprintf(`{"lease_id":"x","renewable":true,"lease_duration":%d,"data":null}`, granted)
			},
			wantRenewals: func(n int) bool { return n == 2 },
		},
		"renewal refused": {
			ttl: 3, renewable: true,
			renew: func(int, time.Duration) (int, string) {
				return 400, `{"errors":["lease not found or lease is not renewable"]}`
			},
			wantRenewals: func(n int) bool { return n == 1 },
		},
		"renewal keeps failing until the lease ends": {
			ttl: 3, renewable: true,
			renew:        func(int, time.Duration) (int, string) { return 500, `{"errors":["internal error"]}` },
			wantRenewals: func(n int) bool { return n >= 1 },
		},
		"not renewable": {
			ttl: 3, renewable: false,
			renew:        func(int, time.Duration) (int, string) { return 500, `{"errors":["must not be called"]}` },
			wantRenewals: func(n int) bool { return n == 0 },
		},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			reads := dynamicSecret(fv, tc.ttl, tc.renewable)
			var mu sync.Mutex
			renewals := 0
			var start time.Time
			fv.handle("PUT", "/v1/sys/leases/renew", func(r fakeReq) (int, string) {
				mu.Lock()
				renewals++
				n := renewals
				mu.Unlock()
				if r.Body["lease_id"] != "database/creds/app/lease-1" || r.Body["increment"] != float64(tc.ttl) || r.Token != "hvs.token-1" {
					t.Errorf("renewal request %+v", r.Body)
				}
				return tc.renew(n, time.Since(start))
			})
			p, logs := unitProvider(t, Options{}, "pw-1-dynamic-secret", "pw-2-dynamic-secret", "lease-1")
			c := unitClass(t, fv.srv.URL, map[string]string{"objects": dbObjects})
			start = time.Now()
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

			waitWake(t, p, 20*time.Second)
			mu.Lock()
			n := renewals
			mu.Unlock()
			if !tc.wantRenewals(n) {
				t.Errorf("%d renewals before the wake-up", n)
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
		var mu sync.Mutex
		renewals := 0
		fv.handle("PUT", "/v1/auth/token/renew-self", func(r fakeReq) (int, string) {
			mu.Lock()
			renewals++
			n := renewals
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
		p, logs := unitProvider(t, Options{}, contentSecrets...)
		c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- {objectName: out, secretPath: secret/data/app, secretKey: password}"})
		if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "two renewals", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return renewals >= 2
		})
		// Past the last grant a fetch logs in again; no lease needed the
		// token, so nothing logged in in the background.
		waitUntil(t, 20*time.Second, "a second login by a fetch", func() bool {
			if fv.loginCount() > 1 {
				t.Fatal("logged in again in the background without leases")
			}
			if _, err := unitFetch(t, p, logs, unitRequest(c, nil)); err != nil {
				t.Fatal(err)
			}
			return fv.loginCount() == 2
		})
		mu.Lock()
		defer mu.Unlock()
		if renewals != 2 {
			t.Errorf("%d renewals, want 2 (the second granted less than asked)", renewals)
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
		waitWake(t, p, 20*time.Second)
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
		for _, r := range []provider.Request{podA, podB, podA} {
			time.Sleep(time.Millisecond)
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
		waitUntil(t, 20*time.Second, "renewals", func() bool {
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
		time.Sleep(100 * time.Millisecond)
	}
}
