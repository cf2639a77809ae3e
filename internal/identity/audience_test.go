package identity_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider/azure"
	"github.com/ssinjector/ssi/internal/provider/gcp"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestAudiencesAgreeWithProviders: the token audiences Decide gives a
// volume are those the gcp and azure providers ask their token source
// for, in every form a workload identity provider is given in (the pod
// annotation, normalised, and the node shim's flag as the operator
// writes it).
func TestAudiencesAgreeWithProviders(t *testing.T) {
	const path = "projects/1/locations/global/workloadIdentityPools/p/providers/k"
	gcpClass, err := spc.ParseSpec("ns", "c", "gcp", map[string]string{"secrets": "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]identity.Sources{
		"pod annotation":         {PodAnnotations: map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: path}},
		"default, resource path": {Defaults: identity.Defaults{GCPWorkloadIdentityProvider: path}},
		"default, leading slash": {Defaults: identity.Defaults{GCPWorkloadIdentityProvider: "/" + path}},
		"default, full name":     {Defaults: identity.Defaults{GCPWorkloadIdentityProvider: "//iam.googleapis.com/" + path}},
		"default, https":         {Defaults: identity.Defaults{GCPWorkloadIdentityProvider: "https://iam.googleapis.com/" + path}},
		"default, namespace":     {Defaults: identity.Defaults{GCPWorkloadIdentityProvider: "identitynamespace:p.svc.id.goog:https://container.googleapis.com/v1/x"}},
		"none":                   {},
	} {
		t.Run("gcp "+name, func(t *testing.T) {
			d := identity.Decide(gcpClass, src)
			want := gcp.Audiences(gcpClass, d.Cloud)
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, d.Audiences); diff != "" {
				t.Errorf("audiences differ from the gcp provider's (-provider +Decide):\n%s", diff)
			}
		})
	}
	azObjects := "array:\n  - |\n    objectName: a\n    objectType: secret\n"
	for name, params := range map[string]map[string]string{
		"workload identity": {"clientID": "c"},
		"vm identity":       {"useVMManagedIdentity": "true"},
		"token proxy":       {"useAzureTokenProxy": "true"},
	} {
		t.Run("azure "+name, func(t *testing.T) {
			p := map[string]string{"keyvaultName": "kv1", "tenantId": "t", "objects": azObjects}
			for k, v := range params {
				p[k] = v
			}
			c, err := spc.ParseSpec("ns", "c", "azure", p)
			if err != nil {
				t.Fatal(err)
			}
			want := azure.Audiences(c)
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, identity.Decide(c, identity.Sources{}).Audiences); diff != "" {
				t.Errorf("audiences differ from the azure provider's (-provider +Decide):\n%s", diff)
			}
		})
	}
}
