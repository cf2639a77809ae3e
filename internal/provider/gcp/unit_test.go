package gcp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

func TestExtract(t *testing.T) {
	cases := map[string]struct {
		payload, jsonKey, yamlKey, want, err string
	}{
		"no key":            {"s3cr3t", "", "", "s3cr3t", ""},
		"json string":       {`{"u":"s3cr3t","n":1}`, "u", "", "s3cr3t", ""},
		"json number":       {`{"u":"s3cr3t","n":1}`, "n", "", "", `key "n" is a number`},
		"json nested":       {`{"m":{"s":"s3cr3t"}}`, "m", "", "", "is a mapping"},
		"json missing":      {`{"u":"s3cr3t"}`, "p", "", "", `key "p" not found`},
		"json array":        {`["s3cr3t"]`, "u", "", "", "not a JSON object"},
		"json syntax":       {`{"u": s3cr3t}`, "u", "", "", "syntax error at byte"},
		"json null":         {`null`, "u", "", "", "not a JSON object"},
		"yaml string":       {"u: s3cr3t\n", "", "u", "s3cr3t", ""},
		"yaml bool":         {"u: true\n", "", "u", "", "is a boolean"},
		"yaml list":         {"- s3cr3t\n", "", "u", "", "not a YAML mapping"},
		"yaml syntax":       {"u: [s3cr3t\n", "", "u", "", "not a YAML mapping"},
		"yaml json is yaml": {`{"u":"s3cr3t"}`, "", "u", "s3cr3t", ""},
		"both keys":         {`{}`, "a", "b", "", "cannot both be set"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := extract([]byte(tc.payload), tc.jsonKey, tc.yamlKey)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("error quotes the payload: %v", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestAudiences(t *testing.T) {
	const res = "projects/1/locations/global/workloadIdentityPools/p/providers/x"
	cases := map[string]struct {
		provider, sts, token string
	}{
		"resource path":      {res, "//iam.googleapis.com/" + res, "https://iam.googleapis.com/" + res},
		"full resource name": {"//iam.googleapis.com/" + res, "//iam.googleapis.com/" + res, "https://iam.googleapis.com/" + res},
		"default audience":   {"https://iam.googleapis.com/" + res, "//iam.googleapis.com/" + res, "https://iam.googleapis.com/" + res},
		"GKE identity namespace": {"identitynamespace:my-project.svc.id.goog:https://container.googleapis.com/v1/projects/my-project/locations/us-east1/clusters/c",
			"identitynamespace:my-project.svc.id.goog:https://container.googleapis.com/v1/projects/my-project/locations/us-east1/clusters/c", "my-project.svc.id.goog"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := STSAudience(tc.provider); got != tc.sts {
				t.Errorf("STSAudience = %q, want %q", got, tc.sts)
			}
			if got := TokenAudience(tc.provider); got != tc.token {
				t.Errorf("TokenAudience = %q, want %q", got, tc.token)
			}
		})
	}
	class := func(auth string) *spc.Class { return &spc.Class{GCP: &spc.GCP{Auth: auth}} }
	for name, tc := range map[string]struct {
		c     *spc.Class
		cloud identity.Cloud
		want  int
	}{
		"federation":    {class(spc.GCPAuthPodADC), identity.Cloud{GCPWorkloadIdentityProvider: res}, 1},
		"metadata":      {class(spc.GCPAuthPodADC), identity.Cloud{GCPServiceAccount: "a@b"}, 0},
		"provider-adc":  {class(spc.GCPAuthProviderADC), identity.Cloud{GCPWorkloadIdentityProvider: res}, 0},
		"not gcp class": {&spc.Class{}, identity.Cloud{GCPWorkloadIdentityProvider: res}, 0},
	} {
		t.Run("Audiences/"+name, func(t *testing.T) {
			if got := Audiences(tc.c, tc.cloud); len(got) != tc.want {
				t.Errorf("Audiences = %v", got)
			}
		})
	}
}

func TestSecretEndpoint(t *testing.T) {
	cases := map[string]struct {
		secret spc.GCPSecret
		env    string
		want   string
	}{
		"global":            {spc.GCPSecret{Kind: spc.GCPGlobalSecret}, "", "secretmanager.googleapis.com:443"},
		"regional":          {spc.GCPSecret{Kind: spc.GCPRegionalSecret, Location: "europe-west4"}, "", "secretmanager.europe-west4.rep.googleapis.com:443"},
		"override":          {spc.GCPSecret{Kind: spc.GCPRegionalSecret, Location: "europe-west4"}, "127.0.0.1:9443", "127.0.0.1:9443"},
		"override template": {spc.GCPSecret{Kind: spc.GCPRegionalSecret, Location: "europe-west4"}, "sm.{location}.example.test:443", "sm.europe-west4.example.test:443"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := New(Options{Getenv: func(k string) string {
				if k == EnvSecretManagerEndpoint {
					return tc.env
				}
				return ""
			}})
			if got := p.secretEndpoint(&tc.secret); got != tc.want {
				t.Errorf("endpoint %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPodADCOutsidePod refuses to use the node's credentials for a pod in
// the node shim, before any network call.
func TestPodADCOutsidePod(t *testing.T) {
	c, err := spc.ParseSpec("ns", "cls", "gcp", map[string]string{"secrets": "- resourceName: projects/p/secrets/s/versions/1\n  path: s"})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{OutsidePod: true, Getenv: func(string) string { return "" }})
	_, err = p.Fetch(context.Background(), provider.Request{Class: c, Identity: identity.Identity{Cloud: identity.Cloud{GCPServiceAccount: "a@p.iam.gserviceaccount.com"}}})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Reason != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), "ns/cls") || !strings.Contains(err.Error(), "the node's, not the pod's") {
		t.Fatalf("err %v", err)
	}
}
