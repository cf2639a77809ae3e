package spc

import (
	"strings"
	"testing"
)

// TestGCPParameterManagerNames parses Parameter Manager resource names as
// the upstream Google provider recognises them (util/constants.go of
// GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp: a global form
// with location "global" and a regional form; examples/app-parameters.yaml.tmpl;
// test/e2e/mount_parametermanager_test.go), with the version named,
// "latest", and the extract keys.
func TestGCPParameterManagerNames(t *testing.T) {
	tests := map[string]struct {
		entry    string
		location string
		global   bool
		file     string
		json     string
		yaml     string
	}{
		"global, named version": {
			entry:    "resourceName: projects/my-project/locations/global/parameters/app-config/versions/v1\n  path: good1.txt",
			location: "global", global: true, file: "good1.txt",
		},
		"global, latest": {
			entry:    "resourceName: projects/my-project/locations/global/parameters/app-config/versions/latest\n  fileName: cfg.yaml",
			location: "global", global: true, file: "cfg.yaml",
		},
		"regional, named version": {
			entry:    "resourceName: projects/my-project/locations/us-east1/parameters/app-config/versions/v2\n  path: nested/regional.txt",
			location: "us-east1", file: "nested/regional.txt",
		},
		"multi-region location": {
			entry:    "resourceName: projects/123456789012/locations/eu/parameters/p_1/versions/ver-2\n  path: eu.txt",
			location: "eu", file: "eu.txt",
		},
		"extractJSONKey": {
			entry:    "resourceName: projects/p/locations/global/parameters/json/versions/v1\n  path: user\n  extractJSONKey: user",
			location: "global", global: true, file: "user", json: "user",
		},
		"extractYAMLKey": {
			entry:    "resourceName: projects/p/locations/us-central1/parameters/yaml/versions/v1\n  path: pwd\n  extractYAMLKey: db_pwd",
			location: "us-central1", file: "pwd", yaml: "db_pwd",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("team", "cls", ProviderGCP, map[string]string{"secrets": "- " + tc.entry + "\n"})
			if err != nil {
				t.Fatal(err)
			}
			s := c.GCP.Secrets[0]
			if s.Kind != GCPParameterVersion || s.Location != tc.location || s.IsGlobalParameter() != tc.global ||
				s.File != tc.file || s.ExtractJSONKey != tc.json || s.ExtractYAMLKey != tc.yaml {
				t.Errorf("parsed %+v (global %v)", s, s.IsGlobalParameter())
			}
		})
	}
}

// TestGCPResourceNamesDenied covers names refused at admission, each
// naming the class and the field: names that are no resource upstream
// knows, a location longer than upstream's 30 characters, and what would
// carry a resource name into another host name or change the request URL
// (docs/providers/gcp.md lists these cases).
func TestGCPResourceNamesDenied(t *testing.T) {
	tests := map[string]struct {
		name  string
		cause string
	}{
		"no version":               {"projects/p/locations/global/parameters/n", "is not projects/P/secrets/S/versions/V"},
		"no location":              {"projects/p/parameters/n/versions/v", "is not projects/P/secrets/S/versions/V"},
		"empty parameter":          {"projects/p/locations/global/parameters//versions/v", "is not projects/P/secrets/S/versions/V"},
		"extra segment":            {"projects/p/locations/global/parameters/n/versions/v/x", "is not projects/P/secrets/S/versions/V"},
		"location over 30":         {"projects/p/locations/" + strings.Repeat("a", 31) + "/parameters/n/versions/v", "longer than 30 characters"},
		"location with userinfo":   {"projects/p/locations/x@attacker.example#/parameters/n/versions/v", "is not a Google Cloud location"},
		"location with a dot":      {"projects/p/locations/evil.example/parameters/n/versions/v", "is not a Google Cloud location"},
		"location upper case":      {"projects/p/locations/US-EAST1/parameters/n/versions/v", "is not a Google Cloud location"},
		"location with a port":     {"projects/p/locations/a:8443/parameters/n/versions/v", "is not a Google Cloud location"},
		"regional secret location": {"projects/p/locations/x@attacker.example/secrets/s/versions/1", "is not a Google Cloud location"},
		"query in a version":       {"projects/p/locations/global/parameters/n/versions/v?alt=media", "would change the request URL"},
		"fragment in a name":       {"projects/p/locations/global/parameters/n#x/versions/v", "would change the request URL"},
		"escape in a project":      {"projects/p%2Fq/locations/global/parameters/n/versions/v", "would change the request URL"},
		"dot-dot parameter":        {"projects/p/locations/global/parameters/../versions/v", "would change the request URL"},
		"space in a version":       {"projects/p/locations/global/parameters/n/versions/v 1", "would change the request URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("team", "cls", ProviderGCP, map[string]string{"secrets": "- resourceName: \"" + tc.name + "\"\n  path: f\n"})
			if err == nil {
				t.Fatalf("accepted: %+v", c.GCP.Secrets[0])
			}
			msg := err.Error()
			for _, want := range []string{"SecretProviderClass team/cls", "parameters.secrets[0].resourceName", tc.cause} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
}
