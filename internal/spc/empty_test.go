package spc

import "testing"

// An explicit empty object list, which upstream users ask the driver to
// accept, parses to a class with no files; a missing or blank list is
// still an error.
func TestEmptyObjectList(t *testing.T) {
	for _, tc := range []struct {
		provider string
		params   map[string]string
		blank    string
	}{
		{ProviderAWS, map[string]string{"objects": "[]"}, "objects"},
		{ProviderVault, map[string]string{"roleName": "app", "vaultAddress": "https://vault:8200", "objects": "[]"}, "objects"},
		{ProviderGCP, map[string]string{"secrets": "[]"}, "secrets"},
		{ProviderAzure, map[string]string{"keyvaultName": "my-vault", "tenantId": "00000000-0000-0000-0000-000000000000", "objects": "array: []"}, "objects"},
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
			if _, err := ParseSpec("team-a", "empty", tc.provider, blank); err == nil {
				t.Errorf("a blank %s parses, want an error", tc.blank)
			}
		})
	}
}
