package spc

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// optionalParams are one class per built-in provider with two objects,
// the second with sub-files where the provider has them.
var optionalParams = map[string]map[string]string{
	ProviderAWS: {"region": "eu-west-1", "objects": `
- objectName: db
  objectType: secretsmanager
- objectName: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:api-AbCdEf"
  objectAlias: api
  jmesPath:
  - {path: user, objectAlias: api-user}
`},
	ProviderAzure: {"keyvaultName": "my-vault", "tenantId": "00000000-0000-0000-0000-000000000000", "objects": `array:
- |
  objectName: db
  objectType: secret
- |
  objectName: api
  objectAlias: api.txt
  objectType: secret
  objectVersionHistory: 2
`},
	ProviderGCP: {"secrets": `
- resourceName: projects/p/secrets/db/versions/latest
  fileName: db
- resourceName: projects/p/secrets/api/versions/latest
  path: api.txt
`},
	ProviderVault: {"roleName": "app", "vaultAddress": "https://vault:8200", "objects": `
- objectName: db
  secretPath: secret/data/db
  secretKey: password
- objectName: api
  secretPath: secret/data/api
  secretKey: token
`},
}

func TestOptionalObjects(t *testing.T) {
	for name, tc := range map[string]struct {
		provider    string
		annotations map[string]string
		want        map[string][]string
		keep        bool
		err         string // substring of the error; "" for none
	}{
		"aws by name": {provider: ProviderAWS, annotations: map[string]string{AnnotationOptionalObjects: "db"},
			want: map[string][]string{"db": {"db"}}},
		"aws by alias yields jmesPath files": {provider: ProviderAWS, annotations: map[string]string{AnnotationOptionalObjects: "api"},
			want: map[string][]string{"api": {"api", "api-user"}}},
		"aws by ARN": {provider: ProviderAWS, annotations: map[string]string{AnnotationOptionalObjects: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:api-AbCdEf"},
			want: map[string][]string{"api": {"api", "api-user"}}},
		"azure by name and alias, version history": {provider: ProviderAzure, annotations: map[string]string{AnnotationOptionalObjects: "db,api.txt"},
			want: map[string][]string{"secret/db": {"secret/db"}, "secret/api": {"secret/api/0", "secret/api/1"}}},
		"gcp by fileName and path": {provider: ProviderGCP, annotations: map[string]string{AnnotationOptionalObjects: "db\napi.txt"},
			want: map[string][]string{"projects/p/secrets/db/versions/latest": {"projects/p/secrets/db/versions/latest"}, "projects/p/secrets/api/versions/latest": {"projects/p/secrets/api/versions/latest"}}},
		"gcp by resourceName": {provider: ProviderGCP, annotations: map[string]string{AnnotationOptionalObjects: "projects/p/secrets/api/versions/latest"},
			want: map[string][]string{"projects/p/secrets/api/versions/latest": {"projects/p/secrets/api/versions/latest"}}},
		"vault, whitespace, newlines and repeats": {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: "  db ,\n\n api,db,  "},
			want: map[string][]string{"db": {"db"}, "api": {"api"}}},
		"keep": {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: "db", AnnotationOptionalOnDelete: " keep "},
			want: map[string][]string{"db": {"db"}}, keep: true},
		"remove explicitly": {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: "db", AnnotationOptionalOnDelete: "remove"},
			want: map[string][]string{"db": {"db"}}},
		"no annotation": {provider: ProviderVault},
		"empty list":    {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: " , "}},
		"unknown name": {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: "db,nope"},
			err: `SecretProviderClass team/cls (provider vault): metadata.annotations[secrets-store-injector.io/optional-objects]: "nope" names no object of the class (its objects: db, api)`},
		"aws file name is not a name": {provider: ProviderAWS, annotations: map[string]string{AnnotationOptionalObjects: "api-user"},
			err: `"api-user" names no object of the class`},
		"bad on-delete": {provider: ProviderVault, annotations: map[string]string{AnnotationOptionalObjects: "db", AnnotationOptionalOnDelete: "Keep"},
			err: `metadata.annotations[secrets-store-injector.io/optional-objects-on-delete]: "Keep" is neither "remove" nor "keep"`},
		"plugin class": {provider: "my-plugin", annotations: map[string]string{AnnotationOptionalObjects: "db"},
			err: `applies to the built-in providers (aws, azure, gcp, vault) only`},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ParseAnnotated("team", "cls", tc.provider, optionalParams[tc.provider], tc.annotations)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 && c.Optional != nil {
				t.Errorf("Optional = %v, want nil", c.Optional)
			}
			if len(tc.want) > 0 && !maps.EqualFunc(c.Optional, tc.want, slices.Equal) {
				t.Errorf("Optional = %v, want %v", c.Optional, tc.want)
			}
			for id := range tc.want {
				if !c.IsOptional(id) {
					t.Errorf("IsOptional(%q) = false", id)
				}
			}
			if c.KeepMissing != tc.keep {
				t.Errorf("KeepMissing = %v, want %v", c.KeepMissing, tc.keep)
			}
			if len(tc.annotations) > 0 && !maps.Equal(c.Annotations, tc.annotations) {
				t.Errorf("Annotations = %v, want %v (the snapshot for the agent)", c.Annotations, tc.annotations)
			}
		})
	}
}

// The annotations reach the parser through Parse (node shim, sync
// controller, local fetch), and other annotations are not carried.
func TestOptionalObjectsThroughParse(t *testing.T) {
	obj := loadClass(t, "testdata/optional-vault.yaml")
	c, err := Parse(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsOptional("db") || c.IsOptional("api") || !c.KeepMissing {
		t.Errorf("Optional = %v, KeepMissing = %v; want db optional and keep", c.Optional, c.KeepMissing)
	}
	if len(c.Annotations) != 2 {
		t.Errorf("Annotations = %v, want the two optional-objects annotations only", c.Annotations)
	}
}

func TestOnDeleteWithoutListWarns(t *testing.T) {
	c, err := ParseAnnotated("team", "cls", ProviderVault, optionalParams[ProviderVault], map[string]string{AnnotationOptionalOnDelete: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "has no effect without "+AnnotationOptionalObjects) {
		t.Errorf("warnings %q, want one about the missing list", c.Warnings)
	}
}

// The shared processes parse every tenant's classes: the annotation costs
// time linear in its names and the objects, a huge objectVersionHistory is
// not enumerated, and a denial quotes a bounded text.
func TestOptionalObjectsBounded(t *testing.T) {
	huge := map[string]string{"keyvaultName": "my-vault", "tenantId": "00000000-0000-0000-0000-000000000000",
		"objects": "array:\n- |\n  objectName: api\n  objectType: secret\n  objectVersionHistory: 2147483647\n"}
	c, err := ParseAnnotated("ns", "c", ProviderAzure, huge, map[string]string{AnnotationOptionalObjects: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if ids := c.Optional["secret/api"]; len(ids) != maxOptionalHistory {
		t.Fatalf("%d version IDs tracked, want %d", len(ids), maxOptionalHistory)
	}

	// 5,000 objects and 20,000 names: linear, not 10^8 comparisons.
	var objs, names strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&objs, "- {objectName: o%d, secretPath: secret/data/o%d, secretKey: k}\n", i, i)
	}
	for i := range 20000 {
		fmt.Fprintf(&names, "o%d,", i%5000)
	}
	params := map[string]string{"roleName": "app", "vaultAddress": "https://vault:8200", "objects": objs.String()}
	if c, err = ParseAnnotated("ns", "c", ProviderVault, params, map[string]string{AnnotationOptionalObjects: names.String()}); err != nil || len(c.Optional) != 5000 {
		t.Fatalf("%v, %d optional", err, len(c.Optional))
	}
	_, err = ParseAnnotated("ns", "c", ProviderVault, params, map[string]string{AnnotationOptionalObjects: strings.Repeat("x", 100000)})
	if err == nil || len(err.Error()) > 1200 || !strings.Contains(err.Error(), "more)") {
		t.Fatalf("denial of %d bytes: %.300v", len(fmt.Sprint(err)), err)
	}
}
