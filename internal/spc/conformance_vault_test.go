package spc

import (
	"strings"
	"testing"
)

// vaultObjs is a class with role "r" and the given objects YAML.
func vaultObjs(objects string) map[string]string {
	return map[string]string{"roleName": "r", "objects": objects}
}

// vaultOne is a class with one object whose other keys are extra.
func vaultOne(extra string) map[string]string {
	return vaultObjs("- {objectName: o, secretPath: secret/data/app, " + extra + "}")
}

// vaultWith is a one-object class plus top-level parameters.
func vaultWith(kv ...string) map[string]string {
	p := vaultObjs("- {objectName: o, secretPath: secret/data/app}")
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return p
}

// TestConformanceVault runs classes drawn from the upstream Vault provider
// (github.com/hashicorp/vault-csi-provider) and the upstream driver's writer
// through admission.
func TestConformanceVault(t *testing.T) {
	o := []FileSpec{f("o", 0)}
	runConformance(t, ProviderVault, map[string]confCase{
		// internal/config/config_test.go const objects (TestParseParameters): filePermission 0600
		"objects constant": {params: vaultObjs("-\n  secretPath: \"v1/secret/foo1\"\n  objectName: \"bar1\"\n  filePermission: 0600"), files: []FileSpec{f("bar1", 0o600)}},
		// internal/config/config_test.go certsSPCYaml (TestParseParametersFromYaml): two PKI objects, PUT, secretArgs
		"certs class from yaml": {params: vaultObjs("- objectName: \"test-certs\"\n  secretPath: \"pki/issue/example-dot-com\"\n  secretKey: \"certificate\"\n  secretArgs:\n    common_name: \"test.example.com\"\n    ip_sans: \"127.0.0.1\"\n    exclude_cn_from_sans: true\n  method: \"PUT\"\n- objectName: \"internal-certs\"\n  secretPath: \"pki/issue/example-dot-com\"\n  secretArgs:\n    common_name: \"internal.example.com\"\n  method: \"PUT\"\n"),
			files: []FileSpec{f("internal-certs", 0), f("test-certs", 0)}},
		// internal/config/config_test.go TestParseConfig "defaults"
		"defaults": {params: vaultObjs("- {objectName: bar1, secretPath: v1/secret/foo1}"), files: []FileSpec{f("bar1", 0)}},
		// internal/config/config_test.go TestParseConfig "set all options"
		"set all options": {params: map[string]string{"roleName": "example-role", "vaultAddress": "http://vault:8200", "vaultNamespace": "ns", "vaultAuthMountPath": "my-mount",
			"vaultCACertPath": "/ca.pem", "vaultCADirectory": "/ca", "vaultTLSServerName": "vault.example", "vaultTLSClientCertPath": "/c.pem", "vaultTLSClientKeyPath": "/k.pem",
			"vaultSkipTLSVerify": "true", "audience": "custom", "objects": "- {objectName: bar1, secretPath: v1/secret/foo1, filePermission: 0600}"}, files: []FileSpec{f("bar1", 0o600)}},
		// internal/config/config_test.go TestParseConfig_Errors "no roleName"
		"no roleName": {params: map[string]string{"objects": "- {objectName: o, secretPath: s}"}, deny: "parameters.roleName"},
		// internal/config/config_test.go TestParseConfig_Errors "no secrets configured"
		"no secrets configured": {params: map[string]string{"roleName": "r"}, deny: "parameters.objects"},
		// internal/config/config_test.go TestValidateConfig "No secrets configured" (empty list).
		// Upstream refuses it; admitted here on purpose (an empty volume, no
		// login), as users ask upstream for it: docs/providers/vault.md.
		"empty objects list": {params: vaultObjs("[]")},
		// internal/config/config_test.go TestParseConfig_Errors "both vaultAuthMountPath and vaultKubernetesMountPath specified"
		"both auth mount paths": {params: vaultWith("vaultAuthMountPath", "a", "vaultKubernetesMountPath", "b"), deny: "parameters.vaultAuthMountPath"},
		// internal/config/config.go parseParameters: vaultKubernetesMountPath alone
		"kubernetes mount path": {params: vaultWith("vaultKubernetesMountPath", "k8s"), files: o},
		// internal/config/config.go parseParameters: vaultAuthMountPath alone
		"auth mount path": {params: vaultWith("vaultAuthMountPath", "jwt"), files: o},
		// internal/config/config_test.go TestValidateConfig "Duplicate objectName"
		"duplicate objectName": {params: vaultObjs("- {objectName: foo, secretPath: a}\n- {objectName: foo, secretPath: b}"), deny: "parameters.objects"},
		// internal/config/config_test.go TestValidateConfig "minimum valid"
		"minimum valid": {params: vaultObjs("- {objectName: foo, secretPath: bar}"), files: []FileSpec{f("foo", 0)}},
		// internal/config/config.go parseParameters: strconv.ParseBool("") fails
		"vaultSkipTLSVerify empty": {params: vaultWith("vaultSkipTLSVerify", ""), deny: "parameters.vaultSkipTLSVerify"},
		// internal/config/config.go parseParameters: strconv.ParseBool(" true") fails (no trimming)
		"vaultSkipTLSVerify padded": {params: vaultWith("vaultSkipTLSVerify", " true"), deny: "parameters.vaultSkipTLSVerify"},
		// internal/config/config.go parseParameters: strconv.ParseBool("yes") fails
		"vaultSkipTLSVerify yes": {params: vaultWith("vaultSkipTLSVerify", "yes"), deny: "parameters.vaultSkipTLSVerify"},
		// internal/config/config.go parseParameters: strconv.ParseBool accepts "1"
		"vaultSkipTLSVerify 1": {params: vaultWith("vaultSkipTLSVerify", "1"), files: o},
		// internal/config/config.go parseParameters: strconv.ParseBool accepts "False"
		"vaultSkipTLSVerify False": {params: vaultWith("vaultSkipTLSVerify", "False"), files: o},
		// internal/config/config.go parseParameters: strconv.ParseBool accepts "T"
		"vaultSkipTLSVerify T": {params: vaultWith("vaultSkipTLSVerify", "T"), files: o},
		// internal/config/config.go parseParameters: audience read as given
		"audience": {params: vaultWith("audience", "vault"), files: o},
		// internal/config/config.go parseParameters: yaml.Unmarshal of objects fails on a mapping
		"objects not a list": {params: vaultObjs("objectName: o"), deny: "parameters.objects"},
		// internal/config/config.go Secret.FilePermission os.FileMode: a negative value does not decode
		"negative filePermission": {params: vaultOne("filePermission: -1"), deny: "parameters.objects"},
		// internal/config/config.go Secret.FilePermission os.FileMode: a string does not decode
		"string filePermission": {params: vaultOne("filePermission: rw"), deny: "parameters.objects"},
		// internal/provider/provider.go HandleMountRequest: filePermission != 0 wins over the mount's
		"filePermission 0640": {params: vaultOne("filePermission: 0640"), files: []FileSpec{f("o", 0o640)}},
		// internal/provider/provider.go HandleMountRequest: filePermission 0 means the mount's permission
		"filePermission 0": {params: vaultOne("filePermission: 0"), files: o},
		// internal/provider/provider.go HandleMountRequest: decimal 420 = 0644
		"decimal filePermission": {params: vaultOne("filePermission: 420"), files: []FileSpec{f("o", 0o644)}},
		// provider.go int32(secret.FilePermission) → driver atomic_writer.go os.WriteFile/os.Chmod keep the permission bits
		"filePermission 01600 keeps 0600": {params: vaultOne("filePermission: 01600"), warn: []string{"parameters.objects[0].filePermission", "01600", "0600"}, files: []FileSpec{f("o", 0o600)}},
		// same, setuid
		"filePermission 04755 keeps 0755": {params: vaultOne("filePermission: 04755"), warn: []string{"parameters.objects[0].filePermission"}, files: []FileSpec{f("o", 0o755)}},
		// same, 07777
		"filePermission 07777 keeps 0777": {params: vaultOne("filePermission: 07777"), warn: []string{"parameters.objects[0].filePermission"}, files: []FileSpec{f("o", 0o777)}},
		// same, 01000: upstream writes 0000; so is it here, with a warning
		"filePermission 01000": {params: vaultOne("filePermission: 01000"), warn: []string{"parameters.objects[0].filePermission", "written with mode 0000"}, files: []FileSpec{f0("o")}},
		// above 07777 is not a Unix mode
		"filePermission 010000 refused": {params: vaultOne("filePermission: 010000"), deny: "parameters.objects[0].filePermission"},
		// internal/provider/provider.go getSecret: encoding is only read when secretKey is set
		"base64 encoding without secretKey": {params: vaultOne("encoding: base64"), warn: []string{"parameters.objects[0].encoding"}, files: o},
		// same, an encoding upstream does not know is ignored too
		"unknown encoding without secretKey": {params: vaultOne("encoding: rot13"), warn: []string{"parameters.objects[0].encoding", "rot13"}, files: o},
		// same, utf-8 is the default and draws no warning
		"utf-8 encoding without secretKey": {params: vaultOne("encoding: utf-8"), files: o},
		// internal/provider/provider.go decodeValue: unknown encoding with secretKey fails every mount
		"unknown encoding with secretKey": {params: vaultOne("secretKey: k, encoding: rot13"), deny: "parameters.objects[0].encoding"},
		// internal/provider/provider.go decodeValue: strings.EqualFold, so BASE64 is base64
		"upper-case encoding": {params: vaultOne("secretKey: k, encoding: BASE64"), files: o},
		// internal/provider/provider.go decodeValue: hex
		"hex encoding": {params: vaultOne("secretKey: k, encoding: hex"), files: o},
		// internal/provider/provider.go decodeValue: UTF-8 (EqualFold)
		"UTF-8 encoding": {params: vaultOne("secretKey: k, encoding: UTF-8"), files: o},
		// internal/client/client_test.go TestGenerateRequest "method specified" (PUT)
		"method PUT": {params: vaultOne("method: PUT"), files: o},
		// internal/client/client_test.go TestGenerateRequest "body specified" (POST with secretArgs)
		"method POST with body": {params: vaultOne("method: POST, secretArgs: {bar: true, baz: 10, zap: a string}"), files: o},
		// internal/client/client.go generateSecretRequest: the method is sent as written; Vault answers 405 to "get"
		"method get lower case": {params: vaultOne("method: get"), deny: "parameters.objects[0].method"},
		// same, "Put"
		"method Put mixed case": {params: vaultOne("method: Put"), deny: "parameters.objects[0].method"},
		// client.go generateSecretRequest: DELETE would delete the secret at every mount (refused on purpose)
		"method DELETE": {params: vaultOne("method: DELETE"), deny: "parameters.objects[0].method"},
		// internal/client/client_test.go TestGenerateRequest "base case" (no method: GET)
		"no method": {params: vaultOne(""), files: o},
		// internal/client/client_test.go TestGenerateRequest "query string"
		"query string": {params: vaultObjs("- {objectName: o, secretPath: 'secret/foo?version=2'}"), files: o},
		// internal/client/client_test.go TestGenerateRequest "zero-length query string"
		"zero-length query string": {params: vaultObjs("- {objectName: o, secretPath: 'secret/foo?'}"), files: o},
		// internal/client/client_test.go TestEnsureV1Prefix "leading /v1/"
		"leading /v1/": {params: vaultObjs("- {objectName: o, secretPath: /v1/secret/foo}"), files: o},
		// internal/client/client_test.go TestEnsureV1Prefix "leading 1"
		"leading 1": {params: vaultObjs("- {objectName: o, secretPath: 1/secret/foo}"), files: o},
		// internal/client/client_test.go TestEnsureV1Prefix "v2"
		"leading /v2/": {params: vaultObjs("- {objectName: o, secretPath: /v2/secret/foo}"), files: o},
		// internal/client/client_test.go TestEnsureV1Prefix "just /v1/": names no secret
		"just /v1/": {params: vaultObjs("- {objectName: o, secretPath: /v1/}"), deny: "parameters.objects[0].secretPath"},
		// internal/client/client_test.go TestEnsureV1Prefix "empty string"
		"empty secretPath": {params: vaultObjs("- {objectName: o}"), deny: "parameters.objects[0].secretPath"},
		// objectName is the file path (provider.go HandleMountRequest Path: secret.ObjectName); nested
		"nested objectName": {params: vaultObjs("- {objectName: tls/cert.pem, secretPath: s}"), files: []FileSpec{f("tls/cert.pem", 0)}},
		// secrets-store-csi-driver atomic_writer.go validatePath: ".." prefix below the top level
		"nested dotdot objectName": {params: vaultObjs("- {objectName: dir/..hidden, secretPath: s}"), files: []FileSpec{f("dir/..hidden", 0)}},
		// atomic_writer.go validatePath "must not start with '..'"
		"dotdot objectName": {params: vaultObjs("- {objectName: ..data, secretPath: s}"), deny: "parameters.objects[0].objectName"},
		// atomic_writer.go validatePath "must not contain '..'"
		"escaping objectName": {params: vaultObjs("- {objectName: ../x, secretPath: s}"), deny: "parameters.objects[0].objectName"},
		// atomic_writer.go validatePath allows a backslash; refused here on purpose (docs/providers/vault.md)
		"backslash objectName": {params: vaultObjs(`- {objectName: 'a\b', secretPath: s}`), deny: "parameters.objects[0].objectName"},
		// atomic_writer.go validatePath "must be relative path"
		"absolute objectName": {params: vaultObjs("- {objectName: /etc/x, secretPath: s}"), deny: "parameters.objects[0].objectName"},
		// atomic_writer.go validatePath "must not be empty"
		"empty objectName": {params: vaultObjs("- {secretPath: s}"), deny: "parameters.objects[0].objectName"},
		// atomic_writer.go validatePath maxFileNameLength 255
		"objectName of 256 bytes": {params: vaultObjs("- {objectName: " + strings.Repeat("n", 256) + ", secretPath: s}"), deny: "parameters.objects[0].objectName"},
		// internal/provider/provider_test.go TestHandleMountRequest: two objects, one with secretKey, one whole response
		"handle mount request objects": {params: vaultObjs("- {objectName: object-one, secretPath: path/one, secretKey: the-key}\n- {objectName: object-two, secretPath: path/two}"),
			files: []FileSpec{f("object-one", 0), f("object-two", 0)}},
		// internal/provider/provider.go getSecret: objects sharing secretPath and method share one response
		"shared secretPath": {params: vaultObjs("- {objectName: user, secretPath: database/creds/app, secretKey: username}\n- {objectName: pass, secretPath: database/creds/app, secretKey: password}"),
			files: []FileSpec{f("pass", 0), f("user", 0)}},
	})
}
