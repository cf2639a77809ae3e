package spc

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

func loadClass(t testing.TB, path string) *ssiv1.SecretProviderClass {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c ssiv1.SecretProviderClass
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &c
}

func seedClasses(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"aws-secret-provider.yaml", "azure-secret-provider.yaml", "vault-secret-provider.yaml", "gcp-secret-provider.yaml", "provider-with-sync.yaml"} {
		out = append(out, filepath.Join("..", "..", "test", "testdata", "seed", f))
	}
	return out
}

func TestParseSeedGuideClasses(t *testing.T) {
	want := map[string]struct {
		provider string
		files    []string
	}{
		"aws-secrets":           {ProviderAWS, []string{"api-key", "db-password"}},
		"azure-keyvault":        {ProviderAzure, []string{"db-password", "signing-key", "tls-cert"}},
		"vault-secrets":         {ProviderVault, []string{"api-token", "db-password"}},
		"gcp-secrets":           {ProviderGCP, []string{"api-key", "db-password"}},
		"aws-secrets-with-sync": {ProviderAWS, []string{"database-creds"}},
	}
	for _, path := range seedClasses(t) {
		obj := loadClass(t, path)
		t.Run(obj.Name, func(t *testing.T) {
			c, err := Parse(obj)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			w := want[obj.Name]
			if c.Provider != w.provider || !c.BuiltIn() {
				t.Fatalf("provider = %q (built-in %v), want %q", c.Provider, c.BuiltIn(), w.provider)
			}
			var got []string
			for _, f := range c.Files() {
				got = append(got, f.Path)
			}
			if strings.Join(got, ",") != strings.Join(w.files, ",") {
				t.Fatalf("files = %v, want %v", got, w.files)
			}
		})
	}
}

func TestParseDocumentedExamples(t *testing.T) {
	paths, _ := filepath.Glob("testdata/examples/*.yaml")
	if len(paths) < 16 {
		t.Fatalf("found %d examples, want the full set", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := Parse(loadClass(t, path))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(c.Files()) == 0 {
				t.Fatal("no files")
			}
		})
	}
}

func TestParseTyping(t *testing.T) {
	tests := map[string]struct {
		provider string
		params   map[string]string
		check    func(t *testing.T, c *Class)
	}{
		"aws ARN implies type, translation replaces slashes": {
			provider: "aws",
			params: map[string]string{"region": "us-east-1", "objects": `
- objectName: "arn:aws:ssm:us-east-1:123456789012:parameter/app/db"
- objectName: "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-x1y2z3"
  objectAlias: app
  filePermission: "0600"
  jmesPath:
    - path: user
      objectAlias: user
`},
			check: func(t *testing.T, c *Class) {
				o := c.AWS.Objects
				if o[0].ObjectType != AWSSSMParameter || o[0].FileName != "arn:aws:ssm:us-east-1:123456789012:parameter_app_db" {
					t.Fatalf("object 0 = %+v", o[0])
				}
				if o[1].ObjectType != AWSSecretsManager || o[1].FilePermission != 0o600 || o[1].JMESPath[0].FilePermission != 0o600 {
					t.Fatalf("object 1 = %+v", o[1])
				}
			},
		},
		"aws pathTranslation False keeps nested paths": {
			provider: "aws",
			params:   map[string]string{"pathTranslation": "False", "objects": "- {objectName: /app/db, objectType: ssmparameter}"},
			check: func(t *testing.T, c *Class) {
				if c.AWS.Objects[0].FileName != "app/db" || c.AWS.PathTranslation != 0 {
					t.Fatalf("got %+v", c.AWS.Objects[0])
				}
			},
		},
		"azure tenantID wins over tenantId and history is a directory": {
			provider: "azure",
			params:   map[string]string{"keyvaultName": "kv1", "tenantID": "t1", "tenantId": "t2", "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectVersionHistory: 3\n    filePermission: 0600\n"},
			check: func(t *testing.T, c *Class) {
				if c.Azure.TenantID != "t1" || !c.Files()[0].Dir || c.Azure.Objects[0].FilePermission != 0o600 || c.Azure.Cloud != AzurePublicCloud {
					t.Fatalf("got %+v", c.Azure)
				}
			},
		},
		"gcp path wins over fileName, mode is a YAML int": {
			provider: "gcp",
			params:   map[string]string{"secrets": "- {resourceName: projects/p/locations/us-east1/secrets/s/versions/3, fileName: a, path: b, mode: 0400}"},
			check: func(t *testing.T, c *Class) {
				s := c.GCP.Secrets[0]
				if s.File != "b" || s.FilePermission != 0o400 || s.Kind != GCPRegionalSecret || s.Location != "us-east1" || c.GCP.Auth != GCPAuthPodADC {
					t.Fatalf("got %+v", s)
				}
			},
		},
		"vault path normalisation, query, defaults": {
			provider: "vault",
			params:   map[string]string{"roleName": "r", "vaultKubernetesMountPath": "/k8s-east/", "objects": "- {objectName: a, secretPath: 'secret/data/x?version=2', method: POST, filePermission: 0640, secretArgs: {common_name: a.example.com, ttl: 1h}}"},
			check: func(t *testing.T, c *Class) {
				o := c.Vault.Objects[0]
				if o.APIPath != "/v1/secret/data/x" || o.Query.Get("version") != "2" || o.Method != "POST" || o.FilePermission != 0o640 || o.SecretArgs["ttl"] != "1h" {
					t.Fatalf("got %+v", o)
				}
				if c.Vault.AuthMountPath != "k8s-east" {
					t.Fatalf("auth mount = %q", c.Vault.AuthMountPath)
				}
			},
		},
		"unknown provider is kept for plugin forwarding": {
			provider: "akeyless",
			params:   map[string]string{"anything": "goes"},
			check: func(t *testing.T, c *Class) {
				if c.BuiltIn() || c.Parameters["anything"] != "goes" {
					t.Fatalf("got %+v", c)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("ns", "c", tc.provider, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	vaultOK := "- {objectName: a, secretPath: secret/data/a}"
	azObj := func(doc string) map[string]string {
		return map[string]string{"keyvaultName": "kv1", "tenantId": "t", "objects": "array:\n  - |\n" + indent(doc, "    ")}
	}
	tests := map[string]struct {
		provider string
		params   map[string]string
		field    string // the message must name this field
	}{
		"empty provider":                {"", nil, "spec.provider"},
		"provider with a slash":         {"../evil", nil, "spec.provider"},
		"aws objects not YAML":          {"aws", map[string]string{"objects": "- {"}, "parameters.objects"},
		"aws objects not a list":        {"aws", map[string]string{"objects": "objectName: x"}, "parameters.objects"},
		"aws missing objectName":        {"aws", map[string]string{"objects": "- objectType: secretsmanager"}, "objects[0].objectName"},
		"aws missing objectType":        {"aws", map[string]string{"objects": "- objectName: x"}, "parameters.objects[0]"},
		"aws bad objectType":            {"aws", map[string]string{"objects": "- {objectName: x, objectType: ssm}"}, "parameters.objects[0]"},
		"aws unquoted filePermission":   {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, filePermission: 0600}"}, "objects[0].filePermission"},
		"aws ARN region mismatch":       {"aws", map[string]string{"region": "us-west-2", "objects": "- objectName: arn:aws:secretsmanager:eu-west-1:1:secret:x"}, "objects[0].objectName"},
		"aws bad ARN":                   {"aws", map[string]string{"objects": "- objectName: 'arn:aws:secretsmanager'"}, "parameters.objects[0]"},
		"aws ssm version and label":     {"aws", map[string]string{"objects": "- {objectName: x, objectType: ssmparameter, objectVersion: '1', objectVersionLabel: l}"}, "parameters.objects[0]"},
		"aws path traversal":            {"aws", map[string]string{"pathTranslation": "False", "objects": "- {objectName: x, objectType: secretsmanager, objectAlias: ../../etc/passwd}"}, "objects[0].objectAlias"},
		"aws jmesPath without alias":    {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, jmesPath: [{path: a}]}"}, "jmesPath[0].objectAlias"},
		"aws jmesPath without path":     {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, jmesPath: [{objectAlias: a}]}"}, "jmesPath[0].path"},
		"aws duplicate alias":           {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, objectAlias: a}\n- {objectName: y, objectType: secretsmanager, objectAlias: a}"}, "objects[1].objectAlias"},
		"aws duplicate name":            {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager}\n- {objectName: x, objectType: secretsmanager}"}, "objects[1].objectName"},
		"aws failover without region":   {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, objectAlias: a, failoverObject: {objectName: y}}"}, "objects[0].failoverObject"},
		"aws failover same region":      {"aws", map[string]string{"region": "us-east-1", "failoverRegion": "us-east-1", "objects": "- {objectName: x, objectType: secretsmanager}"}, "parameters.failoverRegion"},
		"aws pathTranslation two chars": {"aws", map[string]string{"pathTranslation": "ab", "objects": "- {objectName: x, objectType: secretsmanager}"}, "parameters.pathTranslation"},
		"aws usePodIdentity not a bool": {"aws", map[string]string{"usePodIdentity": "yes", "objects": "- {objectName: x, objectType: secretsmanager}"}, "parameters.usePodIdentity"},
		// aws/secrets-store-csi-driver-provider-aws server/server.go MountSecretsStoreObjectContent:
		// strconv.ParseBool on the attribute as written, so " true" fails the mount.
		"aws usePodIdentity padded":     {"aws", map[string]string{"usePodIdentity": " true", "objects": "- {objectName: x, objectType: secretsmanager}"}, "parameters.usePodIdentity"},
		"aws alias and jmes collide":    {"aws", map[string]string{"objects": "- {objectName: x, objectType: secretsmanager, objectAlias: a, jmesPath: [{path: p, objectAlias: a}]}"}, "jmesPath[0].objectAlias"},
		"azure no keyvaultName":         {"azure", map[string]string{"tenantId": "t", "objects": "array: []"}, "parameters.keyvaultName"},
		"azure bad keyvaultName":        {"azure", map[string]string{"keyvaultName": "a_b", "tenantId": "t", "objects": "array:\n  - |\n    objectName: x\n    objectType: secret\n"}, "parameters.keyvaultName"},
		"azure no tenant":               {"azure", map[string]string{"keyvaultName": "kv1", "objects": "array: []"}, "parameters.tenantId"},
		"azure items are maps":          {"azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t", "objects": "array:\n  - objectName: x\n"}, "parameters.objects"},
		"azure bad objectType":          {"azure", azObj("objectName: x\nobjectType: certificate\n"), "array[0].objectType"},
		"azure pfx on a key":            {"azure", azObj("objectName: x\nobjectType: key\nobjectFormat: pfx\n"), "array[0].objectFormat"},
		"azure encoding on a cert":      {"azure", azObj("objectName: x\nobjectType: cert\nobjectEncoding: hex\n"), "array[0].objectEncoding"},
		"azure bad encoding":            {"azure", azObj("objectName: x\nobjectType: secret\nobjectEncoding: rot13\n"), "array[0].objectEncoding"},
		"azure negative filePermission": {"azure", azObj("objectName: x\nobjectType: secret\nfilePermission: \"-644\"\n"), "array[0].filePermission"},
		"azure dotdot alias":            {"azure", azObj("objectName: x\nobjectType: secret\nobjectAlias: a/../../b\n"), "array[0].objectAlias"},
		"azure history quoted":          {"azure", azObj("objectName: x\nobjectType: secret\nobjectVersionHistory: \"5\"\n"), "array[0]"},
		"azure two identity modes":      {"azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t", "usePodIdentity": "true", "useVMManagedIdentity": "true"}, "parameters.usePodIdentity"},
		"azure unknown cloud":           {"azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t", "cloudName": "Mars"}, "parameters.cloudName"},
		"gcp no secrets":                {"gcp", map[string]string{}, "parameters.secrets"},
		"gcp bad auth":                  {"gcp", map[string]string{"auth": "magic", "secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a}"}, "parameters.auth"},
		"gcp bad resourceName":          {"gcp", map[string]string{"secrets": "- {resourceName: secrets/s, path: a}"}, "secrets[0].resourceName"},
		"gcp no path":                   {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1}"}, "secrets[0].path"},
		"gcp quoted mode":               {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a, mode: '0600'}"}, "parameters.secrets"},
		"gcp mode out of range":         {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a, mode: 4096}"}, "secrets[0].mode"},
		"gcp both extract keys":         {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a, extractJSONKey: a, extractYAMLKey: b}"}, "secrets[0].extractJSONKey"},
		"gcp absolute path":             {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: /etc/shadow}"}, "secrets[0].path"},
		"gcp file under a file":         {"gcp", map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a}\n- {resourceName: projects/p/secrets/t/versions/1, path: a/b}"}, "secrets[1].path"},
		"vault no roleName":             {"vault", map[string]string{"objects": vaultOK}, "parameters.roleName"},
		"vault both mount keys":         {"vault", map[string]string{"roleName": "r", "vaultAuthMountPath": "", "vaultKubernetesMountPath": "", "objects": vaultOK}, "parameters.vaultAuthMountPath"},
		"vault skip verify not a bool":  {"vault", map[string]string{"roleName": "r", "vaultSkipTLSVerify": "maybe", "objects": vaultOK}, "parameters.vaultSkipTLSVerify"},
		"vault bad address":             {"vault", map[string]string{"roleName": "r", "vaultAddress": "vault:8200", "objects": vaultOK}, "parameters.vaultAddress"},
		"vault no objects":              {"vault", map[string]string{"roleName": "r"}, "parameters.objects"},
		"vault duplicate objectName":    {"vault", map[string]string{"roleName": "r", "objects": vaultOK + "\n" + vaultOK}, "parameters.objects"},
		"vault no secretPath":           {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: a}"}, "objects[0].secretPath"},
		"vault quoted filePermission":   {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: a, secretPath: s, filePermission: '0600'}"}, "parameters.objects"},
		"vault bad method":              {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: a, secretPath: s, method: DELETE}"}, "objects[0].method"},
		"vault bad encoding":            {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: a, secretPath: s, secretKey: k, encoding: gzip}"}, "objects[0].encoding"},
		"vault objectName escapes":      {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: ../../../etc/cron.d/x, secretPath: s}"}, "objects[0].objectName"},
		"vault absolute objectName":     {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: /etc/passwd, secretPath: s}"}, "objects[0].objectName"},
		"vault secretArgs not a map":    {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: a, secretPath: s, secretArgs: [1, 2]}"}, "parameters.objects"},
		"vault client cert without key": {"vault", map[string]string{"roleName": "r", "vaultTLSClientCertPath": "/c", "objects": vaultOK}, "parameters.vaultTLSClientCertPath"},
		"vault reserved dotdot prefix":  {"vault", map[string]string{"roleName": "r", "objects": "- {objectName: ..data, secretPath: s}"}, "objects[0].objectName"},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d malformed cases", len(tests))
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("team", "cls", tc.provider, tc.params)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			msg := err.Error()
			for _, want := range []string{"SecretProviderClass team/cls", tc.field} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestFilesCarryModes(t *testing.T) {
	c, err := ParseSpec("n", "c", "vault", map[string]string{"roleName": "r", "objects": "- {objectName: a/b, secretPath: s, filePermission: 0400}\n- {objectName: c, secretPath: s}"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Files()
	if len(got) != 2 || got[0] != (FileSpec{Path: "a/b", Mode: fs.FileMode(0o400)}) || got[1] != (FileSpec{Path: "c"}) {
		t.Fatalf("files = %+v", got)
	}
}
