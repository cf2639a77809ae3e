package spc

import "testing"

// An explicit empty object list, which upstream users ask the driver to
// accept, parses to a class with no files; a missing or blank list is
// still an error, except for AWS, whose upstream provider mounts an empty
// volume for it (admitted with a warning: conformance_aws_test.go).
func TestEmptyObjectList(t *testing.T) {
	for _, tc := range []struct {
		provider string
		params   map[string]string
		blank    string
		blankOK  bool
	}{
		{ProviderAWS, map[string]string{"objects": "[]"}, "objects", true},
		{ProviderVault, map[string]string{"roleName": "app", "vaultAddress": "https://vault:8200", "objects": "[]"}, "objects", false},
		{ProviderGCP, map[string]string{"secrets": "[]"}, "secrets", false},
		{ProviderAzure, map[string]string{"keyvaultName": "my-vault", "tenantId": "00000000-0000-0000-0000-000000000000", "objects": "array: []"}, "objects", false},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			c, err := ParseSpec("team-a", "empty", tc.provider, tc.params)
			if err != nil {
				t.Fatalf("an empty list does not parse: %v", err)
			}
			if n := len(c.Files()); n != 0 {
				t.Errorf("%d files, want none", n)
			}
			blank := map[string]string{}
			for k, v := range tc.params {
				blank[k] = v
			}
			blank[tc.blank] = " "
			bc, err := ParseSpec("team-a", "empty", tc.provider, blank)
			switch {
			case tc.blankOK && err != nil:
				t.Errorf("a blank %s is refused, want admitted: %v", tc.blank, err)
			case tc.blankOK && len(bc.Warnings) != 1:
				t.Errorf("a blank %s: warnings %q, want one", tc.blank, bc.Warnings)
			case !tc.blankOK && err == nil:
				t.Errorf("a blank %s parses, want an error", tc.blank)
			}
			if c.Warnings != nil {
				t.Errorf("an explicit empty list warns: %q", c.Warnings)
			}
		})
	}
}
