package spc

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/atomicdir"
)

// seedFuzz adds the seed guide's and the documented examples' parameters of
// one provider as seeds, each as its list parameter plus three others.
func seedFuzz(f *testing.F, provider, listKey string, keys [3]string) {
	paths, _ := filepath.Glob("testdata/examples/*.yaml")
	paths = append(paths, seedClasses(f)...)
	n := 0
	for _, path := range paths {
		c := loadClass(f, path)
		if string(c.Spec.Provider) != provider {
			continue
		}
		p := c.Spec.Parameters
		f.Add(p[listKey], p[keys[0]], p[keys[1]], p[keys[2]])
		n++
	}
	if n == 0 {
		f.Fatalf("no seeds for %s", provider)
	}
}

// checkParsed is the property every accepted class must have: its files
// are valid, unique paths inside the volume.
func checkParsed(t *testing.T, c *Class, err error) {
	if err != nil {
		if !strings.HasPrefix(err.Error(), "SecretProviderClass ns/fuzz (provider ") {
			t.Fatalf("error does not name the class: %v", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, f := range c.Files() {
		if err := atomicdir.ValidatePath(f.Path); err != nil {
			t.Fatalf("accepted a bad path: %v", err)
		}
		if seen[f.Path] {
			t.Fatalf("accepted a duplicate path %q", f.Path)
		}
		seen[f.Path] = true
		if f.Mode > 0o777 {
			t.Fatalf("accepted mode %o", f.Mode)
		}
	}
}

func FuzzParseAWS(f *testing.F) {
	keys := [3]string{"region", "pathTranslation", "failoverRegion"}
	seedFuzz(f, ProviderAWS, "objects", keys)
	f.Fuzz(func(t *testing.T, objects, a, b, c string) {
		cl, err := ParseSpec("ns", "fuzz", ProviderAWS, map[string]string{"objects": objects, keys[0]: a, keys[1]: b, keys[2]: c})
		checkParsed(t, cl, err)
	})
}

func FuzzParseAzure(f *testing.F) {
	keys := [3]string{"keyvaultName", "tenantId", "cloudName"}
	seedFuzz(f, ProviderAzure, "objects", keys)
	f.Fuzz(func(t *testing.T, objects, a, b, c string) {
		cl, err := ParseSpec("ns", "fuzz", ProviderAzure, map[string]string{"objects": objects, keys[0]: a, keys[1]: b, keys[2]: c})
		checkParsed(t, cl, err)
	})
}

func FuzzParseGCP(f *testing.F) {
	keys := [3]string{"auth", "unused1", "unused2"}
	seedFuzz(f, ProviderGCP, "secrets", keys)
	f.Fuzz(func(t *testing.T, secrets, a, b, c string) {
		cl, err := ParseSpec("ns", "fuzz", ProviderGCP, map[string]string{"secrets": secrets, keys[0]: a, keys[1]: b, keys[2]: c})
		checkParsed(t, cl, err)
	})
}

func FuzzParseVault(f *testing.F) {
	keys := [3]string{"roleName", "vaultAddress", "vaultAuthMountPath"}
	seedFuzz(f, ProviderVault, "objects", keys)
	f.Fuzz(func(t *testing.T, objects, a, b, c string) {
		cl, err := ParseSpec("ns", "fuzz", ProviderVault, map[string]string{"objects": objects, keys[0]: a, keys[1]: b, keys[2]: c})
		checkParsed(t, cl, err)
	})
}
