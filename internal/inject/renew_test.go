package inject

import (
	"strings"
	"testing"
)

func TestCertRenewAtAnnotation(t *testing.T) {
	tests := map[string]struct {
		ann  map[string]string
		want float64
		deny string
		warn string
	}{
		"absent":     {},
		"fraction":   {ann: map[string]string{AnnotationCertRenewAt: "0.5"}, want: 0.5},
		"percentage": {ann: map[string]string{AnnotationCertRenewAt: " 75% "}, want: 0.75},
		"one":        {ann: map[string]string{AnnotationCertRenewAt: "1"}, deny: `annotation secrets-store-injector.io/cert-renew-at: "1" is not a fraction between 0 and 1`},
		"zero":       {ann: map[string]string{AnnotationCertRenewAt: "0%"}, deny: `"0%" is not a fraction`},
		"words":      {ann: map[string]string{AnnotationCertRenewAt: "soon"}, deny: `"soon" is not a fraction`},
		"init-only":  {ann: map[string]string{AnnotationCertRenewAt: "0.5", AnnotationMode: "init-only"}, warn: "cert-renew-at is ignored: mode is init-only"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			res, err := Rewrite(&cfg, input(podWith(tc.ann, "vault")))
			if tc.deny != "" {
				if err == nil || ReasonOf(err) != ReasonInvalidAnnotation || !strings.Contains(err.Error(), tc.deny) {
					t.Fatalf("err = %v (reason %q), want a denial containing %q", err, ReasonOf(err), tc.deny)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			warnings := strings.Join(res.Warnings, "\n")
			if tc.warn != "" && !strings.Contains(warnings, tc.warn) {
				t.Errorf("warnings %q lack %q", warnings, tc.warn)
			}
			if tc.warn == "" && strings.Contains(warnings, "cert-renew-at") {
				t.Errorf("unexpected warning %q", warnings)
			}
			_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			if agent == nil {
				t.Fatal("no agent init container")
			}
			if got := decodeAgent(t, *agent).CertRenewAt; got != tc.want {
				t.Errorf("certRenewAt = %v, want %v", got, tc.want)
			}
		})
	}
}
