package identity

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ssinjector/ssi/internal/spc"
)

func TestDecide(t *testing.T) {
	sa := map[string]string{
		SAAnnotationAWSRoleARN:              "arn:aws:iam::111122223333:role/app",
		SAAnnotationAzureClientID:           "sa-client",
		"azure.workload.identity/tenant-id": "sa-tenant",
		SAAnnotationGCPServiceAcct:          "app@p.iam.gserviceaccount.com",
	}
	parse := func(provider string, params map[string]string) *spc.Class {
		c, err := spc.ParseSpec("ns", "c", provider, params)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const (
		wipPath = "projects/1/locations/global/workloadIdentityPools/p/providers/k"
		wipFull = "//iam.googleapis.com/" + wipPath
		wipAud  = "https://iam.googleapis.com/" + wipPath
		other   = "projects/2/locations/global/workloadIdentityPools/q/providers/j"
	)
	awsObjects := "- objectName: db\n  objectType: secretsmanager\n"
	azObjects := "array:\n  - |\n    objectName: db\n    objectType: secret\n"
	gcpSecrets := "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"
	azure := func(extra map[string]string) *spc.Class {
		p := map[string]string{"objects": azObjects, "keyvaultName": "kv-test", "tenantId": "class-tenant"}
		for k, v := range extra {
			p[k] = v
		}
		return parse("azure", p)
	}
	known := Sources{ServiceAccount: "app", ServiceAccountKnown: true, ServiceAccountAnnotations: sa}
	cases := map[string]struct {
		class    *spc.Class
		src      Sources
		want     Cloud
		auds     []string
		warnings []string // substrings, one per warning
		// unsupported is a substring of Decision.Unsupported ("" = none).
		unsupported string
	}{
		"aws irsa": {class: parse("aws", map[string]string{"objects": awsObjects, "region": "eu-west-1"}), src: known,
			want: Cloud{AWSRoleARN: sa[SAAnnotationAWSRoleARN]}, auds: []string{AudienceAWSIRSA}},
		"aws pod identity ignores the role annotation": {class: parse("aws", map[string]string{"objects": awsObjects, "usePodIdentity": "true"}), src: known,
			want: Cloud{}, auds: []string{AudienceAWSPodIdentity}},
		"aws without annotation": {class: parse("aws", map[string]string{"objects": awsObjects, "region": "eu-west-1"}), src: Sources{ServiceAccount: "app", ServiceAccountKnown: true},
			auds: []string{AudienceAWSIRSA}, warnings: []string{`service account "app" has no eks.amazonaws.com/role-arn`}},
		"aws unknown service account": {class: parse("aws", map[string]string{"objects": awsObjects, "region": "eu-west-1"}), src: Sources{ServiceAccount: "app", ServiceAccountAnnotations: sa},
			auds: []string{AudienceAWSIRSA}, warnings: []string{`service account "app" is unknown`}},
		"azure from the class": {class: azure(map[string]string{"clientID": "class-client"}), src: known,
			want: Cloud{AzureClientID: "class-client", AzureTenantID: "class-tenant"}, auds: []string{AudienceAzureWorkloadIdentity}},
		"azure client ID from the service account, tenant from the class": {class: azure(nil), src: known,
			want: Cloud{AzureClientID: "sa-client", AzureTenantID: "class-tenant"}, auds: []string{AudienceAzureWorkloadIdentity}},
		"azure without client ID": {class: azure(nil), src: Sources{ServiceAccount: "app", ServiceAccountKnown: true},
			want: Cloud{AzureTenantID: "class-tenant"}, auds: []string{AudienceAzureWorkloadIdentity}, warnings: []string{"needs a client ID"}},
		"azure service principal": {class: azure(nil), src: Sources{ServiceAccount: "app", ServiceAccountKnown: true, NodePublishSecret: true},
			want: Cloud{AzureTenantID: "class-tenant", Credentials: CredentialsNodePublishSecret}, auds: []string{}},
		// Upstream (pkg/auth/auth.go NewConfig) takes the service principal
		// whenever the class names no clientID; the service account's
		// client-id annotation is ours, so it does not outrank the Secret.
		"azure service principal over the service account": {class: azure(nil), src: Sources{ServiceAccount: "app", ServiceAccountKnown: true, ServiceAccountAnnotations: sa, NodePublishSecret: true},
			want: Cloud{AzureTenantID: "class-tenant", Credentials: CredentialsNodePublishSecret}, auds: []string{}},
		"azure class client ID over the secret": {class: azure(map[string]string{"clientID": "class-client"}), src: Sources{ServiceAccount: "app", ServiceAccountKnown: true, NodePublishSecret: true},
			want: Cloud{AzureClientID: "class-client", AzureTenantID: "class-tenant"}, auds: []string{AudienceAzureWorkloadIdentity}},
		"azure pod identity unsupported": {class: azure(map[string]string{"usePodIdentity": "true"}), src: known,
			want: Cloud{AzureTenantID: "class-tenant"}, auds: []string{}, unsupported: "aad-pod-identity, which Microsoft retired"},
		"azure token proxy unsupported": {class: azure(map[string]string{"useAzureTokenProxy": "true", "clientID": "c"}), src: known,
			want: Cloud{AzureTenantID: "class-tenant"}, auds: []string{}, unsupported: "not publicly documented"},
		"gcp key.json": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}), src: Sources{ServiceAccountKnown: true, ServiceAccountAnnotations: sa, NodePublishSecret: true},
			want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct], Credentials: CredentialsNodePublishSecret}, auds: []string{}},
		"gcp key.json with auth set": {class: parse("gcp", map[string]string{"secrets": gcpSecrets, "auth": "pod-adc"}), src: Sources{ServiceAccountKnown: true, ServiceAccountAnnotations: sa, NodePublishSecret: true},
			want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct]}, auds: []string{}, warnings: []string{"parameters.auth is set and the volume names a nodePublishSecretRef"}},
		"azure vm identity": {class: azure(map[string]string{"useVMManagedIdentity": "true"}), src: known,
			want: Cloud{AzureTenantID: "class-tenant"}, auds: []string{}, warnings: []string{"parameters.useVMManagedIdentity fetches with the node's managed identity"}},
		"gcp metadata server": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}), src: known,
			want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct]}, auds: []string{}},
		"gcp pod annotation": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}),
			src:  Sources{ServiceAccountKnown: true, ServiceAccountAnnotations: sa, PodAnnotations: map[string]string{AnnotationGCPWorkloadIdentityProvider: wipPath}},
			want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct], GCPWorkloadIdentityProvider: wipFull}, auds: []string{wipAud}},
		"gcp operator default": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}),
			src:  Sources{Defaults: Defaults{GCPWorkloadIdentityProvider: wipPath}},
			want: Cloud{GCPWorkloadIdentityProvider: wipPath}, auds: []string{wipAud}},
		"gcp identity namespace default": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}),
			src:  Sources{Defaults: Defaults{GCPWorkloadIdentityProvider: "identitynamespace:p.svc.id.goog:https://container.googleapis.com/x"}},
			want: Cloud{GCPWorkloadIdentityProvider: "identitynamespace:p.svc.id.goog:https://container.googleapis.com/x"}, auds: []string{"p.svc.id.goog"}},
		"gcp pod annotation wins over the default": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}),
			src:  Sources{PodAnnotations: map[string]string{AnnotationGCPWorkloadIdentityProvider: wipFull}, Defaults: Defaults{GCPWorkloadIdentityProvider: other}},
			want: Cloud{GCPWorkloadIdentityProvider: wipFull}, auds: []string{wipAud}},
		"gcp invalid pod annotation": {class: parse("gcp", map[string]string{"secrets": gcpSecrets}),
			src:  Sources{PodAnnotations: map[string]string{AnnotationGCPWorkloadIdentityProvider: "pool/x"}, Defaults: Defaults{GCPWorkloadIdentityProvider: other}},
			want: Cloud{GCPWorkloadIdentityProvider: other}, auds: []string{"https://iam.googleapis.com/" + other}, warnings: []string{"is ignored"}},
		"gcp provider-adc ignores provider and default": {class: parse("gcp", map[string]string{"secrets": gcpSecrets, "auth": "provider-adc"}),
			src:  Sources{ServiceAccountKnown: true, ServiceAccountAnnotations: sa, PodAnnotations: map[string]string{AnnotationGCPWorkloadIdentityProvider: wipPath}, Defaults: Defaults{GCPWorkloadIdentityProvider: other}},
			want: Cloud{GCPServiceAccount: sa[SAAnnotationGCPServiceAcct]}, auds: []string{}, warnings: []string{"auth: provider-adc fetches with"}},
		"vault": {class: parse("vault", map[string]string{"roleName": "r", "objects": "- objectName: a\n  secretPath: s\n"}), src: known,
			auds: []string{DefaultAudience}},
		"vault audience": {class: parse("vault", map[string]string{"roleName": "r", "audience": "vault", "objects": "- objectName: a\n  secretPath: s\n"}), src: known,
			auds: []string{"vault"}},
		// vault-csi-provider: kubelet's token for "vault" when the class
		// sets no audience and the CSIDriver requests one.
		"vault, token requests include vault": {class: parse("vault", map[string]string{"roleName": "r", "objects": "- objectName: a\n  secretPath: s\n"}),
			src: Sources{Defaults: Defaults{TokenRequests: []string{"sts.amazonaws.com", "vault", ""}}}, want: Cloud{VaultAudience: "vault"}, auds: []string{"vault"}},
		"vault, class audience wins over vault": {class: parse("vault", map[string]string{"roleName": "r", "audience": "team-a", "objects": "- objectName: a\n  secretPath: s\n"}),
			src: Sources{Defaults: Defaults{TokenRequests: []string{"vault"}}}, auds: []string{"team-a"}},
		"vault, token requests without vault": {class: parse("vault", map[string]string{"roleName": "r", "objects": "- objectName: a\n  secretPath: s\n"}),
			src: Sources{Defaults: Defaults{TokenRequests: []string{"", "sts.amazonaws.com"}}}, auds: []string{DefaultAudience}},
		"plugin": {class: parse("acme", map[string]string{"x": "y"}), src: known, auds: []string{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := Decide(tc.class, tc.src)
			if (tc.unsupported == "") != (d.Unsupported == "") || !strings.Contains(d.Unsupported, tc.unsupported) {
				t.Errorf("unsupported = %q, want it to contain %q", d.Unsupported, tc.unsupported)
			}
			if d.Cloud != tc.want {
				t.Errorf("cloud = %+v\nwant %+v", d.Cloud, tc.want)
			}
			if diff := cmp.Diff(tc.auds, d.Audiences); diff != "" {
				t.Errorf("audiences (-want +got):\n%s", diff)
			}
			if len(d.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d", d.Warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(d.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, d.Warnings[i], w)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	got := Merge(Cloud{AzureTenantID: "t1", AzureClientID: "c1"}, Cloud{}, Cloud{AzureTenantID: "t2", AzureClientID: "c2", AWSRoleARN: "r", GCPWorkloadIdentityProvider: "w"})
	want := Cloud{AzureTenantID: "t1", AzureClientID: "c1", AWSRoleARN: "r", GCPWorkloadIdentityProvider: "w"}
	if got != want {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
}

// TestVaultAudience is vault-csi-provider's choice (internal/config
// Parse: tokens[audience] with audience = class audience or "vault";
// internal/auth createJWTToken: a minted token for the class audience,
// none meaning the API server's default), reduced to the audience used.
func TestVaultAudience(t *testing.T) {
	cases := map[string]struct {
		class    string
		requests []string
		want     string
	}{
		"class audience, kubelet sends it":      {"team-a", []string{"team-a"}, "team-a"},
		"class audience, kubelet sends others":  {"team-a", []string{"vault", ""}, "team-a"},
		"class audience, no token requests":     {"team-a", nil, "team-a"},
		"no class audience, vault requested":    {"", []string{"vault"}, AudienceVault},
		"no class audience, default requested":  {"", []string{""}, DefaultAudience},
		"no class audience, nothing requested":  {"", nil, DefaultAudience},
		"no class audience, Vault is not vault": {"", []string{"Vault"}, DefaultAudience},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := VaultAudience(tc.class, tc.requests); got != tc.want {
				t.Errorf("VaultAudience(%q, %q) = %q, want %q", tc.class, tc.requests, got, tc.want)
			}
		})
	}
	if got := VaultLoginAudience("", Cloud{VaultAudience: "vault"}); got != "vault" {
		t.Errorf("VaultLoginAudience with a decided audience = %q", got)
	}
	if got := VaultLoginAudience("team-a", Cloud{}); got != "team-a" {
		t.Errorf("VaultLoginAudience of an older configuration = %q", got)
	}
}
