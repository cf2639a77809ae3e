package identity

import (
	"testing"

	"github.com/ssinjector/ssi/internal/spc"
)

func TestCloudFor(t *testing.T) {
	sa := map[string]string{
		SAAnnotationAWSRoleARN:     "arn:aws:iam::111122223333:role/app",
		SAAnnotationAzureClientID:  "sa-client",
		SAAnnotationAzureTenantID:  "sa-tenant",
		SAAnnotationGCPServiceAcct: "app@p.iam.gserviceaccount.com",
	}
	parse := func(provider string, params map[string]string) *spc.Class {
		c, err := spc.ParseSpec("ns", "c", provider, params)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	awsObjects := "- objectName: db\n  objectType: secretsmanager\n"
	azObjects := "array:\n  - |\n    objectName: db\n    objectType: secret\n"
	gcpSecrets := "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"
	cases := map[string]struct {
		class *spc.Class
		sa    map[string]string
		gcp   string
		want  Cloud
	}{
		"aws irsa":               {class: parse("aws", map[string]string{"objects": awsObjects}), sa: sa, want: Cloud{AWSRoleARN: sa[SAAnnotationAWSRoleARN]}},
		"aws pod identity":       {class: parse("aws", map[string]string{"objects": awsObjects, "usePodIdentity": "true"}), sa: sa, want: Cloud{}},
		"aws without annotation": {class: parse("aws", map[string]string{"objects": awsObjects}), want: Cloud{}},
		"azure from the class": {class: parse("azure", map[string]string{"objects": azObjects, "keyvaultName": "kv-test", "tenantId": "class-tenant", "clientID": "class-client"}),
			sa: sa, want: Cloud{AzureClientID: "class-client", AzureTenantID: "class-tenant"}},
		"azure client ID from the service account": {class: parse("azure", map[string]string{"objects": azObjects, "keyvaultName": "kv-test", "tenantId": "class-tenant"}),
			sa: sa, want: Cloud{AzureClientID: "sa-client", AzureTenantID: "class-tenant"}},
		"gcp":              {class: parse("gcp", map[string]string{"secrets": gcpSecrets}), sa: sa, gcp: "projects/1/locations/global/workloadIdentityPools/p/providers/k", want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct], GCPWorkloadIdentityProvider: "projects/1/locations/global/workloadIdentityPools/p/providers/k"}},
		"gcp provider-adc": {class: parse("gcp", map[string]string{"secrets": gcpSecrets, "auth": "provider-adc"}), sa: sa, gcp: "projects/1/x", want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct]}},
		"vault":            {class: parse("vault", map[string]string{"roleName": "r", "objects": "- objectName: a\n  secretPath: s\n"}), sa: sa, want: Cloud{}},
		"plugin":           {class: parse("acme", map[string]string{"x": "y"}), sa: sa, want: Cloud{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := CloudFor(tc.class, tc.sa, tc.gcp); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
