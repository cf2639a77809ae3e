package spc

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// confCase is one upstream-conformance case: a class's parameters and what
// admission must decide about it.
type confCase struct {
	params map[string]string
	// deny is the field the denial must name; empty means admitted.
	deny string
	// warn lists substrings each admission warning set must contain (the
	// field, usually); nil means no warning at all.
	warn []string
	// files are the files (sorted by path, with modes) of an admitted class.
	files []FileSpec
}

// runConformance parses every case as class ns/c of provider and checks the
// verdict, the field and class named by a denial, the warnings and the files.
func runConformance(t *testing.T, provider string, cases map[string]confCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("ns", "c", provider, tc.params)
			if tc.deny != "" {
				if err == nil {
					t.Fatalf("admitted, want a denial naming %s; files %+v", tc.deny, c.Files())
				}
				msg := err.Error()
				if !strings.Contains(msg, "SecretProviderClass ns/c") || !strings.Contains(msg, tc.deny+":") {
					t.Fatalf("denial %q does not name the class and field %s", msg, tc.deny)
				}
				return
			}
			if err != nil {
				t.Fatalf("denied, want admitted: %v", err)
			}
			if got := c.Files(); !reflect.DeepEqual(got, tc.files) && (len(got) != 0 || len(tc.files) != 0) {
				t.Errorf("files = %+v, want %+v", got, tc.files)
			}
			all := strings.Join(c.Warnings, "\n")
			if tc.warn == nil && len(c.Warnings) > 0 {
				t.Errorf("unexpected warnings: %q", c.Warnings)
			}
			for _, w := range tc.warn {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q do not contain %q", c.Warnings, w)
				}
			}
		})
	}
}

func f(path string, mode fs.FileMode) FileSpec { return FileSpec{Path: path, Mode: mode} }

// f0 is a file written with mode 0000, as upstream writes a mode with no
// permission bits.
func f0(path string) FileSpec { return FileSpec{Path: path, ExactMode: true} }

// gcpOne is a class with one secret entry whose other keys are extra (YAML
// flow-mapping members).
func gcpOne(extra string) map[string]string {
	return map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, " + extra + "}"}
}

const gcpRes = "projects/project/secrets/test/versions/latest"

// TestConformanceGCP runs classes drawn from the upstream Google provider
// (github.com/GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp) and
// the upstream driver's writer (kubernetes-sigs/secrets-store-csi-driver,
// pkg/util/fileutil) through admission.
func TestConformanceGCP(t *testing.T) {
	runConformance(t, ProviderGCP, map[string]confCase{
		// config/config_test.go TestParse "single secret"
		"single secret": {params: map[string]string{"secrets": "- resourceName: \"" + gcpRes + "\"\n  fileName: \"good1.txt\"\n"},
			files: []FileSpec{f("good1.txt", 0)}},
		// config/config_test.go TestParse "single secret with mode" (0600 = 384)
		"single secret with mode": {params: map[string]string{"secrets": "- resourceName: \"" + gcpRes + "\"\n  fileName: \"good1.txt\"\n  mode: 0600\n"},
			files: []FileSpec{f("good1.txt", 0o600)}},
		// config/config_test.go TestParse "multiple secret"
		"multiple secret": {params: map[string]string{"secrets": "- resourceName: \"" + gcpRes + "\"\n  fileName: \"good1.txt\"\n- resourceName: \"projects/project/secrets/test2/versions/latest\"\n  fileName: \"good2.txt\"\n"},
			files: []FileSpec{f("good1.txt", 0), f("good2.txt", 0)}},
		// config/config_test.go TestParse "multiple secrets with decimal and octal modes"
		"decimal and octal modes": {params: map[string]string{"secrets": "- resourceName: \"" + gcpRes + "\"\n  fileName: \"good1.txt\"\n  mode: 256\n- resourceName: \"projects/project/secrets/test2/versions/latest\"\n  fileName: \"good2.txt\"\n  mode: 0600\n"},
			files: []FileSpec{f("good1.txt", 0o400), f("good2.txt", 0o600)}},
		// config/config_test.go TestParse "Provider ADC auth"
		"provider-adc auth": {params: map[string]string{"auth": "provider-adc", "secrets": "- {resourceName: " + gcpRes + ", fileName: good1.txt}"},
			files: []FileSpec{f("good1.txt", 0)}},
		// config/config_test.go TestParse "Pod ADC auth"
		"pod-adc auth": {params: map[string]string{"auth": "pod-adc", "secrets": "- {resourceName: " + gcpRes + ", fileName: good1.txt}"},
			files: []FileSpec{f("good1.txt", 0)}},
		// config/config.go Parse: case "" defaults to pod auth
		"empty auth is pod-adc": {params: map[string]string{"auth": "", "secrets": "- {resourceName: " + gcpRes + ", fileName: good1.txt}"},
			files: []FileSpec{f("good1.txt", 0)}},
		// config/config_test.go TestParse "secrets with extractJSONKey"
		"extractJSONKey": {params: gcpOne("fileName: good1.txt, extractJSONKey: user"), files: []FileSpec{f("good1.txt", 0)}},
		// config/config_test.go TestParseErrors "missing secrets attribute"
		"missing secrets attribute": {params: map[string]string{}, deny: "parameters.secrets"},
		// config/config_test.go TestParseErrors "unparsable secrets mode"
		"unparsable secrets mode": {params: map[string]string{"secrets": "- resourceName: \"" + gcpRes + "\"\n  fileName: \"good1.txt\"\n  mode: \"-rw-------\""}, deny: "parameters.secrets"},
		// config/config_test.go TestParseErrors "unknown auth"
		"unknown auth": {params: map[string]string{"auth": "super-good-auth", "secrets": "- {resourceName: " + gcpRes + ", fileName: good1.txt}"}, deny: "parameters.auth"},
		// config/config.go Parse: yaml.Unmarshal into []*Secret fails on a mapping
		"secrets not a list": {params: map[string]string{"secrets": "resourceName: " + gcpRes}, deny: "parameters.secrets"},
		// config/config.go Parse: mode is *int32, a quoted string does not decode
		"quoted mode string": {params: gcpOne("fileName: a, mode: '0600'"), deny: "parameters.secrets"},
		// config/config.go Secret.Mode: int32, so 2^31 does not decode
		"mode beyond int32": {params: gcpOne("fileName: a, mode: 2147483648"), deny: "parameters.secrets"},
		// config/config.go Secret.PathString: path wins over fileName
		"path wins over fileName": {params: gcpOne("fileName: legacy.txt, path: new.txt"), files: []FileSpec{f("new.txt", 0)}},
		// config/config.go Secret.PathString: nested path
		"nested path": {params: gcpOne("path: dir/sub/file.txt"), files: []FileSpec{f("dir/sub/file.txt", 0)}},
		// secrets-store-csi-driver pkg/util/fileutil/atomic_writer.go validatePath: only the first element may not start with ".."
		"dotdot prefix in a later element": {params: gcpOne("path: dir/..hidden"), files: []FileSpec{f("dir/..hidden", 0)}},
		// atomic_writer.go validatePath: "..data" below the top level is an ordinary name
		"nested ..data": {params: gcpOne("path: a/b/..data"), files: []FileSpec{f("a/b/..data", 0)}},
		// atomic_writer.go validatePath via fileName (PathString falls back to it)
		"dotdot prefix in fileName later element": {params: gcpOne("fileName: conf/..x"), files: []FileSpec{f("conf/..x", 0)}},
		// atomic_writer.go validatePath "must not start with '..'"
		"dotdot prefix first element": {params: gcpOne("path: ..hidden"), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath: "..data" at the top is the writer's own
		"top-level ..data": {params: gcpOne("path: ..data/x"), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath "must not contain '..'"
		"parent element": {params: gcpOne("path: ../escape"), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath "must not contain '..'" (inner)
		"inner parent element": {params: gcpOne("path: dir/../../x"), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath "must be relative path"
		"absolute path": {params: gcpOne("path: /etc/passwd"), deny: "parameters.secrets[0].path"},
		// writer.go Validate: filepath.Clean(path) != path
		"unclean dot element": {params: gcpOne("path: ./a"), deny: "parameters.secrets[0].path"},
		// writer.go Validate: filepath.Clean(path) != path
		"double slash": {params: gcpOne("path: a//b"), deny: "parameters.secrets[0].path"},
		// writer.go Validate: filepath.Clean(path) != path
		"trailing slash": {params: gcpOne("path: a/"), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath allows a backslash; refused here on purpose (docs/providers/gcp.md)
		"backslash path": {params: gcpOne(`path: 'a\b'`), deny: "parameters.secrets[0].path"},
		// atomic_writer.go validatePath maxFileNameLength 255
		"element of 256 bytes": {params: gcpOne("fileName: " + strings.Repeat("x", 256)), deny: "parameters.secrets[0].fileName"},
		// atomic_writer.go validatePath maxFileNameLength 255 (boundary admitted)
		"element of 255 bytes": {params: gcpOne("fileName: " + strings.Repeat("x", 255)), files: []FileSpec{f(strings.Repeat("x", 255), 0)}},
		// atomic_writer.go validatePath "must not be empty" (neither path nor fileName)
		"no path or fileName": {params: gcpOne("mode: 0600"), deny: "parameters.secrets[0].path"},
		// server/server.go handleMountEvent: an empty resourceName is an "unknown resource type"
		"empty resourceName": {params: map[string]string{"secrets": "- {fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// server/server_test.go TestHandleMountBothSMKeyJSONYAMLKeyProvided
		"both JSON and YAML key (secret manager)": {params: gcpOne("fileName: a, extractJSONKey: k, extractYAMLKey: k"), deny: "parameters.secrets[0].extractJSONKey"},
		// server/server_test.go TestHandleMountBothPMKeyJSONYAMLKeyProvided
		"both JSON and YAML key (parameter manager)": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/global/parameters/pm/versions/v1, fileName: a, extractJSONKey: k, extractYAMLKey: k}"}, deny: "parameters.secrets[0].extractJSONKey"},
		// util/key_extractor_test.go TestExtractContentUsingYAMLKey valid_yaml_key_exists_string_value
		"extractYAMLKey": {params: gcpOne("fileName: a, extractYAMLKey: user"), files: []FileSpec{f("a", 0)}},
		// server/server_test.go TestHandleMountEventForRegionalSecret
		"regional secret": {params: map[string]string{"secrets": "- {resourceName: projects/project/locations/us-central1/secrets/test/versions/latest, fileName: good1.txt}"}, files: []FileSpec{f("good1.txt", 0)}},
		// server/server_test.go TestHandleMountEventForRegionalSecretExtractJSONKey
		"regional secret extractJSONKey": {params: map[string]string{"secrets": "- {resourceName: projects/project/locations/us-central1/secrets/test/versions/latest, fileName: good1.txt, extractJSONKey: user}"}, files: []FileSpec{f("good1.txt", 0)}},
		// server/server_test.go TestHandleMountEventForMultipleSecretsExtractJSONKey
		"multiple secrets extractJSONKey": {params: map[string]string{"secrets": "- {resourceName: " + gcpRes + ", fileName: user, extractJSONKey: user}\n- {resourceName: " + gcpRes + ", fileName: pass, extractJSONKey: pass}"},
			files: []FileSpec{f("pass", 0), f("user", 0)}},
		// server/server.go resourceIdentity: the same resource at two paths (maybe different modes)
		"same resource two paths two modes": {params: map[string]string{"secrets": "- {resourceName: " + gcpRes + ", path: a, mode: 0400}\n- {resourceName: " + gcpRes + ", path: b, mode: 0644}"},
			files: []FileSpec{f("a", 0o400), f("b", 0o644)}},
		// server/server_test.go TestHandleMountEventsSMInvalidLocations; util/location_extractor_test.go invalid_location_too_long
		"secret location too long": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/" + strings.Repeat("l", 31) + "/secrets/s/versions/1, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// server/server_test.go TestHandleMountEventsPMInvalidLocations
		"parameter location too long": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/" + strings.Repeat("l", 31) + "/parameters/n/versions/1, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// util/location_extractor_test.go invalid_secret_format_missing_versions
		"secret missing versions": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/s, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// util/location_extractor_test.go invalid_secret_format_regional_missing_versions
		"regional secret missing versions": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/us-east1/secrets/s, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// util/resource_validator_test.go TestIsSecretResource "invalid - wrong format"
		"wrong format": {params: map[string]string{"secrets": "- {resourceName: projects/p/secret/s/version/1, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// util/resource_validator_test.go TestIsSecretResource "invalid - random string"
		"random string": {params: map[string]string{"secrets": "- {resourceName: random-string, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// util/resource_validator_test.go TestIsSecretResource "valid global secret specific version"
		"global secret numbered version": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/2, fileName: a}"}, files: []FileSpec{f("a", 0)}},
		// util/resource_validator_test.go TestIsSecretResource "valid regional secret specific version"
		"regional secret numbered version": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/europe-west1/secrets/s/versions/7, fileName: a}"}, files: []FileSpec{f("a", 0)}},
		// util/resource_validator_test.go TestIsParameterManagerResource "valid global parameter latest version"
		"global parameter version": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/global/parameters/pm/versions/latest, fileName: a}"}, files: []FileSpec{f("a", 0)}},
		// util/resource_validator_test.go TestIsParameterManagerResource "valid regional parameter specific version"
		"regional parameter version": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/us-central1/parameters/pm/versions/v2, fileName: a}"}, files: []FileSpec{f("a", 0)}},
		// util/resource_validator_test.go TestIsParameterManagerResource "invalid - missing version global"
		"parameter missing version": {params: map[string]string{"secrets": "- {resourceName: projects/p/locations/global/parameters/pm, fileName: a}"}, deny: "parameters.secrets[0].resourceName"},
		// server/server.go handleMountEvent: mode passed as int32 to the driver, whose writer
		// (atomic_writer.go writePayloadToDir, os.WriteFile + os.Chmod with os.FileMode) keeps the permission bits
		"mode 01777 keeps 0777": {params: gcpOne("path: a, mode: 01777"), warn: []string{"parameters.secrets[0].mode", "01777", "0777"}, files: []FileSpec{f("a", 0o777)}},
		// same as above, setuid bit
		"mode 04755 keeps 0755": {params: gcpOne("path: a, mode: 04755"), warn: []string{"parameters.secrets[0].mode", "0755"}, files: []FileSpec{f("a", 0o755)}},
		// same as above, setgid bit
		"mode 02700 keeps 0700": {params: gcpOne("path: a, mode: 02700"), warn: []string{"parameters.secrets[0].mode"}, files: []FileSpec{f("a", 0o700)}},
		// same as above, in decimal (1023 = 01777)
		"decimal mode 1023 keeps 0777": {params: gcpOne("path: a, mode: 1023"), warn: []string{"parameters.secrets[0].mode"}, files: []FileSpec{f("a", 0o777)}},
		// same as above, all special bits (07777)
		"mode 07777 keeps 0777": {params: gcpOne("path: a, mode: 07777"), warn: []string{"parameters.secrets[0].mode"}, files: []FileSpec{f("a", 0o777)}},
		// server/server.go handleMountEvent: mode 0 is written 0000 upstream; so is it here, with a warning
		"mode 0": {params: gcpOne("path: a, mode: 0"), warn: []string{"parameters.secrets[0].mode", "written with mode 0000"}, files: []FileSpec{f0("a")}},
		// same: 01000 keeps no permission bit
		"mode 01000": {params: gcpOne("path: a, mode: 01000"), warn: []string{"parameters.secrets[0].mode", "no permission bits"}, files: []FileSpec{f0("a")}},
		// config/config.go Secret.Mode comment: "between 0000 and 0777"; above 07777 is not a Unix mode
		"mode 010000 refused": {params: gcpOne("path: a, mode: 010000"), deny: "parameters.secrets[0].mode"},
		// config/config.go Secret.Mode comment; a negative value would set Go's mode-type flags
		"negative mode refused": {params: gcpOne("path: a, mode: -1"), deny: "parameters.secrets[0].mode"},
		// gopkg.in/yaml.v3 (config.go's decoder) reads 0o640 as octal
		"YAML 1.2 octal mode": {params: gcpOne("path: a, mode: 0o640"), files: []FileSpec{f("a", 0o640)}},
		// gopkg.in/yaml.v3 reads hexadecimal integers
		"hex mode": {params: gcpOne("path: a, mode: 0x1a4"), files: []FileSpec{f("a", 0o644)}},
		// config/config.go Secret.Mode comment "a decimal value between 0 and 511"
		"decimal 511": {params: gcpOne("path: a, mode: 511"), files: []FileSpec{f("a", 0o777)}},
		// config/config.go Secret.Mode comment "octal value between 0000 and 0777" (boundary)
		"mode 0777": {params: gcpOne("path: a, mode: 0777"), files: []FileSpec{f("a", 0o777)}},
		// secrets-store-csi-driver atomic_writer.go writePayloadToDir: MkdirAll under an existing file fails the mount
		"file and directory of another": {params: map[string]string{"secrets": "- {resourceName: " + gcpRes + ", path: a}\n- {resourceName: " + gcpRes + ", path: a/b}"}, deny: "parameters.secrets[1].path"},
		// the mode's denial names the field of the entry it is in
		"second entry mode refused": {params: map[string]string{"secrets": "- {resourceName: " + gcpRes + ", path: a}\n- {resourceName: " + gcpRes + ", path: b, mode: 0100000}"}, deny: "parameters.secrets[1].mode"},
	})
}
