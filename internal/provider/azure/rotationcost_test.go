package azure

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
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
// changed, per kind of Key Vault object (10 of them, 1 KiB values): calls,
// response bytes, and how many secret values those responses carried.
// Key Vault has no properties-only read of the newest version, so a
// "latest" object is downloaded and compared by version id; a pinned
// objectVersion costs nothing. `make bench-rotation` prints the lines.
func TestUnchangedRotationCost(t *testing.T) {
	r := newRig(t)
	r.fake.sent.SetMarker(rotationMarker)
	const n = 10
	var latest, pinned []string
	for i := 0; i < n; i++ {
		r.fake.put("secrets", fmt.Sprintf("cost-latest-%d", i), kvVer{value: rotationValue(i)})
		latest = append(latest, fmt.Sprintf("objectName: cost-latest-%d\nobjectType: secret", i))
		v := r.fake.put("secrets", fmt.Sprintf("cost-pinned-%d", i), kvVer{value: rotationValue(i)})
		pinned = append(pinned, fmt.Sprintf("objectName: cost-pinned-%d\nobjectType: secret\nobjectVersion: %s", i, v))
	}
	cases := map[string]struct {
		objects       []string
		calls, values int
		// kept: every object is in Request.Keep (certificates before
		// their renewal point).
		kept bool
	}{
		"secret, latest":                      {latest, n, n, false},
		"secret, objectVersion pinned":        {pinned, 0, 0, false},
		"secret, latest, kept before renewal": {latest, 0, 0, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := r.class(map[string]string{"clientID": testClientID, "objects": objectsParam(tc.objects...)})
			req := r.request(c)
			objs, err := r.p.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			r.fake.calls.Snapshot()
			r.fake.sent.Snapshot()
			const cycles = 3
			for i := 0; i < cycles; i++ {
				req.Current = provider.Versions(objs)
				if tc.kept {
					req.Keep = providertest.KeepAll(req.Current)
				}
				cur, err := r.p.Fetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range cur {
					if !o.Unchanged {
						t.Fatalf("cycle %d: object %s changed", i, o.ID)
					}
				}
			}
			calls := r.fake.calls.Snapshot()
			sent, values := r.fake.sent.Snapshot()
			total := 0
			for _, c := range calls {
				total += c
			}
			if total != tc.calls*cycles || values != tc.values*cycles {
				t.Errorf("%d cycles: %d calls and %d values downloaded, want %d and %d per cycle", cycles, total, values, tc.calls, tc.values)
			}
			t.Logf("rotation cost: azure %s: %d objects, per unchanged cycle %.1f calls, %.0f response bytes, %.1f values downloaded (values of 1 KiB; in-process fake)",
				name, len(tc.objects), float64(total)/cycles, float64(sent)/cycles, float64(values)/cycles)
		})
	}
}
