package aws_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
)

// TestResponseLimit: a Secrets Manager answer over MaxResponseBytes fails
// the fetch with InvalidContent naming the limit, through the SDK's own
// client, and quotes nothing of the value.
func TestResponseLimit(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	f.putSecret("us-east-1", "big", ptr(strings.Repeat("B", 64<<10)), nil)
	f.putSecret("us-east-1", "small", ptr("ok"), nil)
	opts := testOptions()
	opts.MaxResponseBytes = 16 << 10
	p := awsprov.New(opts)
	cases := map[string]struct {
		object string
		err    bool
	}{
		"under the limit": {"small", false},
		"over the limit":  {"big", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := parseClass(t, map[string]string{"region": "us-east-1", "objects": "- objectName: " + tc.object + "\n  objectType: secretsmanager\n"})
			_, _, err := provider.FetchMerged(context.Background(), p, provider.Request{Class: c, Identity: testIdentity()}, nil)
			if !tc.err {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, limits.ErrTooLarge) || provider.ReasonOf(err) != provider.ReasonInvalidContent ||
				!strings.Contains(err.Error(), "limit of 16384 bytes") || strings.Contains(err.Error(), "BBBB") {
				t.Fatalf("err %v, want InvalidContent naming the 16384-byte limit", err)
			}
		})
	}
}
