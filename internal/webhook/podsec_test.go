package webhook

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
)

// countingLookup counts the class lookups, each of which is a read from
// the API server when the class is missing from the cache.
type countingLookup struct {
	*staticLookup
	classReads atomic.Int32
}

func (c *countingLookup) Class(ctx context.Context, ns, name string) (*ssiv1.SecretProviderClass, error) {
	c.classReads.Add(1)
	return c.staticLookup.Class(ctx, ns, name)
}

// TestMissingClassesCostOneRead is the cost amplification of finding 10
// of issue 14: a pod naming many classes that do not exist is denied at
// the first, after one lookup, and a pod naming more than the cap is
// denied before any.
func TestMissingClassesCostOneRead(t *testing.T) {
	tests := map[string]struct {
		missing   int
		wantReads int32
		wantMsg   string
	}{
		"one existing class, then missing ones": {missing: inject.MaxClassesPerPod - 1, wantReads: 2, wantMsg: `SecretProviderClass "missing-0" not found`},
		"more than the cap":                     {missing: 1000, wantReads: 0, wantMsg: fmt.Sprintf("at most %d are allowed per pod", inject.MaxClassesPerPod)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := &countingLookup{staticLookup: seedLookup(t)}
			pod := seedPod(t, "aws-secrets")
			yes := true
			for i := range tc.missing {
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("m%d", i), VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: fmt.Sprintf("missing-%d", i)},
				}}})
			}
			h, _ := newTestHandler(l, admissionregistrationv1.Fail)
			resp := h.Handle(context.Background(), request(t, pod))
			if resp.Allowed {
				t.Fatal("admitted, want denial")
			}
			if resp.Result == nil || !strings.Contains(resp.Result.Message, tc.wantMsg) {
				t.Errorf("denial %+v lacks %q", resp.Result, tc.wantMsg)
			}
			if got := l.classReads.Load(); got != tc.wantReads {
				t.Errorf("%d class lookups, want %d", got, tc.wantReads)
			}
		})
	}
}
