package aws_test

import (
	"fmt"
	"strings"
	"testing"

	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
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
// changed, per kind of AWS object (10 of them, 1 KiB values): calls,
// response bytes, and how many secret values those responses carried.
// BatchGetSecretValue and GetParameters answer with versions and values,
// so the values are downloaded and compared; DescribeSecret carries
// versions only; pinned versions cost nothing. `make bench-rotation`
// prints the lines.
func TestUnchangedRotationCost(t *testing.T) {
	const n = 10
	cases := map[string]struct {
		ssm, label, pinned, denyBatch bool
		// kept: every object is in Request.Keep (certificates before
		// their renewal point).
		kept          bool
		objects       int
		calls, values int
	}{
		"secretsmanager AWSCURRENT, BatchGetSecretValue allowed": {objects: n, calls: 1, values: n},
		"secretsmanager AWSCURRENT, BatchGetSecretValue denied":  {objects: n, denyBatch: true, calls: n, values: 0},
		"secretsmanager AWSCURRENT, 1 secret":                    {objects: 1, calls: 1, values: 0},
		"secretsmanager objectVersionLabel":                      {objects: n, label: true, calls: n, values: 0},
		"secretsmanager objectVersion pinned":                    {objects: n, pinned: true, calls: 0, values: 0},
		"ssmparameter":                                           {objects: n, ssm: true, calls: 1, values: n},
		"ssmparameter objectVersion pinned":                      {objects: n, ssm: true, pinned: true, calls: 0, values: 0},
		"secretsmanager, kept before the renewal point":          {objects: n, kept: true, calls: 0, values: 0},
		"ssmparameter, kept before the renewal point":            {objects: n, ssm: true, kept: true, calls: 0, values: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			useFake(t, f)
			f.sent.SetMarker(rotationMarker)
			f.do(func() { f.denyBatch = tc.denyBatch })
			const region = "eu-west-1"
			var objects strings.Builder
			for i := 0; i < tc.objects; i++ {
				if tc.ssm {
					name := fmt.Sprintf("/svc/param-%02d", i)
					f.putParam(region, name, "SecureString", rotationValue(i))
					fmt.Fprintf(&objects, "- objectName: %s\n  objectType: ssmparameter\n", name)
					if tc.pinned {
						objects.WriteString("  objectVersion: \"1\"\n")
					}
					continue
				}
				name := fmt.Sprintf("svc/secret-%02d", i)
				v := f.putSecret(region, name, ptr(rotationValue(i)), nil, "STABLE")
				fmt.Fprintf(&objects, "- objectName: %s\n  objectType: secretsmanager\n", name)
				if tc.label {
					objects.WriteString("  objectVersionLabel: STABLE\n")
				}
				if tc.pinned {
					fmt.Fprintf(&objects, "  objectVersion: %q\n", v)
				}
			}
			fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: parseClass(t, map[string]string{
				"region": region, "objects": objects.String()}), id: testIdentity()}
			fe.mustCycle()
			// A denied batch is remembered: the steady state starts with
			// the second cycle.
			fe.mustCycle()
			fe.keepAll = tc.kept
			f.counts()
			f.sent.Snapshot()
			const cycles = 3
			for i := 0; i < cycles; i++ {
				fe.mustCycle()
				if u := fe.unchanged(); len(u) != tc.objects {
					t.Fatalf("cycle %d: %d of %d objects unchanged", i, len(u), tc.objects)
				}
			}
			counts := f.counts()
			calls := 0
			for _, c := range counts {
				calls += c
			}
			sent, values := f.sent.Snapshot()
			breakdown := sortedCounts(counts)
			if breakdown == "" {
				breakdown = "no call"
			}
			if calls != tc.calls*cycles || values != tc.values*cycles {
				t.Errorf("%d cycles: %d calls [%s] and %d values downloaded, want %d and %d per cycle", cycles, calls, sortedCounts(counts), values, tc.calls, tc.values)
			}
			t.Logf("rotation cost: aws %s: %d objects, per unchanged cycle %.1f calls [%s per %d cycles], %.0f response bytes, %.1f values downloaded (values of 1 KiB; in-process fake)",
				name, tc.objects, float64(calls)/cycles, breakdown, cycles, float64(sent)/cycles, float64(values)/cycles)
		})
	}
}
