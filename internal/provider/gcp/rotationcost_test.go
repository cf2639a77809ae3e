package gcp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// rotationMarker is in every secret value of TestUnchangedRotationCost, so
// the fake's byte counter sees when a value is downloaded.
const rotationMarker = "ROTATION-COST-VALUE"

// rotationValue is a 1 KiB secret value carrying the marker.
func rotationValue(i int) []byte {
	v := fmt.Sprintf("%s-%02d-", rotationMarker, i)
	return []byte(v + strings.Repeat("x", 1024-len(v)))
}

// TestUnchangedRotationCost states what a rotation cycle costs when nothing
// changed, per kind of Secret Manager entry (10 of them, 1 KiB values):
// calls, response bytes (serialized messages), and how many secret values
// those responses carried. "latest" is resolved with GetSecretVersion
// (metadata only) where the identity may call it, otherwise read with
// AccessSecretVersion and compared; numbered versions cost nothing. `make
// bench-rotation` prints the lines.
func TestUnchangedRotationCost(t *testing.T) {
	r := newRig(t)
	r.fake.sent.SetMarker(rotationMarker)
	const n = 10
	var latest, pinned strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("projects/my-project/secrets/cost-%d", i)
		r.fake.addVersion(name, rotationValue(i))
		fmt.Fprintf(&latest, "- resourceName: %s/versions/latest\n  path: l%d\n", name, i)
		fmt.Fprintf(&pinned, "- resourceName: %s/versions/1\n  path: p%d\n", name, i)
	}
	cases := map[string]struct {
		secrets       string
		viewer        bool
		calls, values int
		// kept: every entry is in Request.Keep (certificates before
		// their renewal point).
		kept bool
	}{
		"latest, versions.get granted":                       {latest.String(), true, n, 0, false},
		"latest, only versions.access (secretAccessor role)": {latest.String(), false, n, n, false},
		"numbered version":                                   {pinned.String(), true, 0, 0, false},
		"latest, kept before the renewal point":              {latest.String(), false, 0, 0, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r.fake.mu.Lock()
			r.fake.accessors["sa:"+gsaEmail] = true
			r.fake.viewers["sa:"+gsaEmail] = tc.viewer
			r.fake.mu.Unlock()
			p := r.provider(true)
			req := r.request(r.class(map[string]string{"secrets": tc.secrets}), identity.Cloud{}, nil)
			objs, err := p.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			req.Current = provider.Versions(objs)
			// Warm-up cycle: learns whether metadata may be read.
			if _, err := p.Fetch(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if tc.kept {
				req.Keep = providertest.KeepAll(req.Current)
			}
			r.fake.calls.Snapshot()
			r.fake.sent.Snapshot()
			const cycles = 3
			for i := 0; i < cycles; i++ {
				cur, err := p.Fetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range cur {
					if !o.Unchanged {
						t.Fatalf("cycle %d: %s changed", i, o.ID)
					}
				}
			}
			calls := r.fake.calls.Snapshot()
			total := providertest.Total(calls, "sm ")
			sent, values := r.fake.sent.Snapshot()
			if total != tc.calls*cycles || values != tc.values*cycles {
				t.Errorf("%d cycles: %d calls (%s) and %d values downloaded, want %d and %d per cycle", cycles, total, providertest.Format(calls), values, tc.calls, tc.values)
			}
			t.Logf("rotation cost: gcp %s: %d entries, per unchanged cycle %.1f calls, %.0f response bytes, %.1f values downloaded (values of 1 KiB; in-process fake)",
				name, n, float64(total)/cycles, float64(sent)/cycles, float64(values)/cycles)
		})
	}
}
