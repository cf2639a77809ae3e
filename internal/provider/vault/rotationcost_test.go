package vault

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
)

// rotationMarker is in every secret value of TestUnchangedRotationCost, so
// the fake's byte counter sees when a value is downloaded.
const rotationMarker = "ROTATION-COST-VALUE"

// rotationValue is a 1 KiB secret value carrying the marker.
func rotationValue(i int) string {
	v := fmt.Sprintf("%s-%02d-", rotationMarker, i)
	return v + strings.Repeat("x", 1024-len(v))
}

// TestUnchangedRotationCost states what a rotation cycle costs when nothing
// changed, per kind of Vault object: Vault calls, response bytes, and how
// many secret values those responses carried. Static secrets (KV) have no
// version Vault reports without the value, so every cycle reads them again
// and compares (one GET per distinct path and method); secrets with a lease
// are read once and their lease renewed in the background, so a cycle reads
// nothing. `make bench-rotation` prints the lines.
func TestUnchangedRotationCost(t *testing.T) {
	const n = 10
	cases := map[string]struct {
		serve     func(fv *fakeVault)
		objects   func() string
		calls     int
		values    int
		renewable bool
	}{
		"kv2, 10 secrets at 10 paths": {
			serve: func(fv *fakeVault) {
				for i := 0; i < n; i++ {
					fv.reply("GET", fmt.Sprintf("/v1/secret/data/app/s%d", i), 200, kv2Body(map[string]string{"value": rotationValue(i)}))
				}
			},
			objects: func() string {
				var b strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "- {objectName: s%d, secretPath: secret/data/app/s%d, secretKey: value}\n", i, i)
				}
				return b.String()
			},
			calls: n, values: n,
		},
		"kv2, 10 keys of 1 path": {
			serve: func(fv *fakeVault) {
				data := map[string]string{}
				for i := 0; i < n; i++ {
					data[fmt.Sprintf("k%d", i)] = rotationValue(i)
				}
				fv.reply("GET", "/v1/secret/data/app/all", 200, kv2Body(data))
			},
			objects: func() string {
				var b strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "- {objectName: k%d, secretPath: secret/data/app/all, secretKey: k%d}\n", i, i)
				}
				return b.String()
			},
			calls: 1, values: n,
		},
		"leased (dynamic) secret, 2 keys": {
			serve: func(fv *fakeVault) {
				fv.reply("GET", "/v1/database/creds/app", 200, fmt.Sprintf(`{"request_id":"r1","lease_id":"database/creds/app/lease-1","renewable":true,"lease_duration":3600,"data":{"username":"v-app-1","password":%q},"warnings":null}`, rotationValue(0)))
			},
			objects: func() string { return dbObjects },
			calls:   0, values: 0,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			fv.sent.SetMarker(rotationMarker)
			tc.serve(fv)
			p, logs := unitProvider(t, Options{}, rotationMarker)
			c := unitClass(t, fv.srv.URL, map[string]string{"objects": tc.objects()})
			objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if err != nil {
				t.Fatal(err)
			}
			const cycles = 3
			reqs0 := fv.total()
			fv.sent.Snapshot()
			for i := 0; i < cycles; i++ {
				cur, err := unitFetch(t, p, logs, unitRequest(c, provider.Versions(objs)))
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range cur {
					if !o.Unchanged {
						t.Fatalf("cycle %d: object %s changed", i, o.ID)
					}
				}
			}
			calls := fv.total() - reqs0
			sent, values := fv.sent.Snapshot()
			if calls != tc.calls*cycles || values != tc.values*cycles {
				t.Errorf("%d cycles: %d calls and %d values downloaded, want %d and %d per cycle", cycles, calls, values, tc.calls, tc.values)
			}
			t.Logf("rotation cost: vault %s: %d objects, per unchanged cycle %.1f calls, %.0f response bytes, %.1f values downloaded (values of 1 KiB; fake Vault)",
				name, len(objs), float64(calls)/cycles, float64(sent)/cycles, float64(values)/cycles)
		})
	}
}

// kv2Body is a KV version 2 read answer holding data.
func kv2Body(data map[string]string) string {
	var b strings.Builder
	b.WriteString(`{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{`)
	first := true
	for k, v := range data {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", k, v)
	}
	b.WriteString(`},"metadata":{"created_time":"2026-01-01T00:00:00Z","version":1}},"warnings":null}`)
	return b.String()
}

// total is the number of requests the fake received.
func (f *fakeVault) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}
