package chart

import (
	"reflect"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/csi"
)

// TestCSIDriverMatchesCode compares the chart's CSIDriver with
// internal/csi.DriverObject (what `make csidriver` writes and the shim's
// tests assume) for the same audiences and Kubernetes version.
func TestCSIDriverMatchesCode(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		o    Options
		want csi.DriverObjectOptions
	}{
		"defaults, 1.30":           {Options{}, csi.DriverObjectOptions{}},
		"defaults, 1.37":           {Options{KubeVersion: "1.37.0"}, csi.DriverObjectOptions{TokenInSecrets: true}},
		"non-default audiences":    {Options{Set: []string{"tokenRequests[0].audience=vault", "tokenRequests[1].audience=p.svc.id.goog"}}, csi.DriverObjectOptions{Audiences: []string{"vault", "p.svc.id.goog"}}},
		"rotation off (republish)": {Options{Set: []string{"enableSecretRotation=false"}}, csi.DriverObjectOptions{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := convert[storagev1.CSIDriver](t, Get(render(t, r, tc.o), "CSIDriver", csi.DriverName))
			want := csi.DriverObject(tc.want)
			if name == "rotation off (republish)" {
				// requiresRepublish follows enableSecretRotation, as upstream's chart does.
				f := false
				want.Spec.RequiresRepublish = &f
			}
			sameAsCode(t, "chart CSIDriver differs from internal/csi", got.Spec, want.Spec)
		})
	}
}

// sameAsCode fails t with both sides as YAML unless what the chart renders
// equals what the code generates.
func sameAsCode(t *testing.T, what string, chart, code any) {
	t.Helper()
	if !reflect.DeepEqual(chart, code) {
		c, _ := yaml.Marshal(chart)
		g, _ := yaml.Marshal(code)
		t.Errorf("%s:\nchart:\n%s\ncode:\n%s", what, c, g)
	}
}
