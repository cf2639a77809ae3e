package spc

import (
	"io/fs"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// azWith is a class of vault kv1 in tenant tid whose objects array holds
// docs (each one YAML document string, as upstream's StringArray), with the
// extra parameters set (an empty value deletes a default).
func azWith(extra map[string]string, docs ...string) map[string]string {
	objects := "array:\n"
	for _, d := range docs {
		objects += "  - |\n" + indent(d, "    ")
	}
	p := map[string]string{"keyvaultName": "kv1", "tenantID": "tid", "objects": objects}
	for k, v := range extra {
		if v == "" {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	return p
}

func azDocs(docs ...string) map[string]string { return azWith(nil, docs...) }

// azMarshal builds the objects parameter as upstream's e2e suite does
// (test/e2e: yaml.Marshal of each KeyVaultObject into a StringArray, then
// yaml.Marshal of the array), so every field is present, empty ones too.
func azMarshal(t *testing.T, extra map[string]string, objs ...AzureObject) map[string]string {
	t.Helper()
	var arr struct {
		Array []string `yaml:"array"`
	}
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		arr.Array = append(arr.Array, string(b))
	}
	b, err := yaml.Marshal(arr)
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]string{"keyvaultName": "kv1", "tenantId": "tid", "clientID": "cid", "objects": string(b)}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// azDir is a directory of version files (objectVersionHistory > 1).
func azDir(path string, mode fs.FileMode) FileSpec {
	return FileSpec{Path: path, Mode: mode, Dir: true}
}

const (
	azSecret1 = "objectName: secret1\nobjectType: secret\n"
	azA0      = "parameters.objects.array[0]"
)

// azSecretWith is secret1 with extra object fields.
func azSecretWith(extra string) map[string]string { return azDocs(azSecret1 + extra) }

// TestConformanceAzure runs classes drawn from the upstream Azure Key Vault
// provider (github.com/Azure/secrets-store-csi-driver-provider-azure) and
// the upstream driver's writer (kubernetes-sigs/secrets-store-csi-driver,
// pkg/util/fileutil) through admission. Paths in the comments are files of
// the Azure provider's repository unless another repository is named.
func TestConformanceAzure(t *testing.T) {
	hist := []string{azA0 + ".objectVersionHistory", "upstream writes one more"}
	runConformance(t, ProviderAzure, map[string]confCase{
		// --- top-level parameters ---

		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "keyvault name not provided"
		"keyvault name not provided": {params: azWith(map[string]string{"keyvaultName": ""}, azSecret1), deny: "parameters.keyvaultName"},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "tenantID not provided"
		"tenantID not provided": {params: azWith(map[string]string{"tenantID": ""}, azSecret1), deny: "parameters.tenantId"},
		// pkg/provider/types/parameters.go GetTenantID: trimmed, so white space alone is missing
		"tenantID blank": {params: azWith(map[string]string{"tenantID": "  "}, azSecret1), deny: "parameters.tenantId"},
		// pkg/provider/types/parameters_test.go TestGetTenantID "not empty" (the deprecated tenantId)
		"deprecated tenantId": {params: azWith(map[string]string{"tenantID": "", "tenantId": "test"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters_test.go TestGetTenantID "new tenantID parameter with spaces"
		"tenantID with spaces": {params: azWith(map[string]string{"tenantID": " test "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// azidentity validTenantID (called by upstream's auth.go credentials): letters, digits, '.' and '-' only
		"tenantID with a slash": {params: azWith(map[string]string{"tenantID": "t/../x"}, azSecret1), deny: "parameters.tenantID"},
		// same rule, the deprecated spelling: the denial names the key that was set
		"tenantId with a space": {params: azWith(map[string]string{"tenantID": "", "tenantId": "my tenant"}, azSecret1), deny: "parameters.tenantId"},
		// same rule: a domain name is a tenant ID
		"tenantID domain": {params: azWith(map[string]string{"tenantID": "contoso.onmicrosoft.com"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/auth/auth.go getManagedIdentityTokenCredential takes no tenant: any value is served
		"tenantID unused by a managed identity": {params: azWith(map[string]string{"tenantID": "not a tenant", "useVMManagedIdentity": "true"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "usePodIdentity not a boolean as expected"
		"usePodIdentity not a boolean": {params: azWith(map[string]string{"usePodIdentity": "tru"}, azSecret1), deny: "parameters.usePodIdentity"},
		// pkg/provider/types/parameters_test.go TestGetUsePodIdentityError
		"usePodIdentity test": {params: azWith(map[string]string{"usePodIdentity": "test"}, azSecret1), deny: "parameters.usePodIdentity"},
		// pkg/provider/types/parameters_test.go TestGetUsePodIdentity "set to False"
		"usePodIdentity False": {params: azWith(map[string]string{"usePodIdentity": "False"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "useVMManagedIdentity not a boolean as expected"
		"useVMManagedIdentity not a boolean": {params: azWith(map[string]string{"usePodIdentity": "false", "useVMManagedIdentity": "tru"}, azSecret1), deny: "parameters.useVMManagedIdentity"},
		// pkg/provider/types/parameters_test.go TestGetUseVMManagedIdentity "trim spaces"
		"useVMManagedIdentity trimmed": {params: azWith(map[string]string{"useVMManagedIdentity": " true "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters_test.go TestGetUseVMManagedIdentity "set to True" with userAssignedIdentityID (TestGetUserAssignedIdentityID "trim spaces")
		"user-assigned identity": {params: azWith(map[string]string{"useVMManagedIdentity": "True", "userAssignedIdentityID": " test "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent_IdentityBinding_InvalidParameter
		"useAzureTokenProxy invalid": {params: azWith(map[string]string{"useAzureTokenProxy": "invalid-value", "clientID": "test-client-id"}, azSecret1), deny: "parameters.useAzureTokenProxy"},
		// pkg/provider/types/parameters_test.go TestGetUseAzureTokenProxy "FALSE (capital)"
		"useAzureTokenProxy FALSE": {params: azWith(map[string]string{"useAzureTokenProxy": "FALSE"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters_test.go TestGetUseAzureTokenProxy "0"
		"useAzureTokenProxy 0": {params: azWith(map[string]string{"useAzureTokenProxy": "0"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent_MutualExclusivity
		"two identity modes": {params: azWith(map[string]string{"usePodIdentity": "true", "useAzureTokenProxy": "true", "clientID": "test-client-id"}, azSecret1), deny: "parameters.usePodIdentity"},
		// pkg/provider/provider.go GetSecretsStoreObjectContent: the mode count also covers useVMManagedIdentity
		"VM identity and token proxy": {params: azWith(map[string]string{"useVMManagedIdentity": "true", "useAzureTokenProxy": "1"}, azSecret1), deny: "parameters.usePodIdentity"},
		// pkg/provider/types/parameters_test.go TestGetClientID "trim spaces" (workload identity)
		"clientID trimmed": {params: azWith(map[string]string{"clientID": " test "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "invalid cloud name"
		"invalid cloud name": {params: azWith(map[string]string{"cloudName": "AzureCloud1"}, azSecret1), deny: "parameters.cloudName"},
		// pkg/provider/provider_test.go TestParseAzureEnvironment wrongEnvName
		"wrong cloud": {params: azWith(map[string]string{"cloudName": "AZUREWRONGCLOUD"}, azSecret1), deny: "parameters.cloudName"},
		// pkg/provider/provider_test.go TestParseAzureEnvironment "AZURECHINACLOUD"
		"china cloud": {params: azWith(map[string]string{"cloudName": "AZURECHINACLOUD"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestParseAzureEnvironment "AZUREUSGOVERNMENTCLOUD"
		"us government cloud": {params: azWith(map[string]string{"cloudName": "AZUREUSGOVERNMENTCLOUD"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestParseAzureEnvironment "AZUREPUBLICCLOUD"
		"public cloud": {params: azWith(map[string]string{"cloudName": "AZUREPUBLICCLOUD"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// go-autorest azure/environments.go environments: the aliases AzureCloud and AzureUSGovernment, any case
		"cloud aliases": {params: azWith(map[string]string{"cloudName": " azurecloud "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// go-autorest azure/environments.go environments: AzureUSGovernment
		"us government alias": {params: azWith(map[string]string{"cloudName": "AzureUSGovernment"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestParseAzureEnvironment "AZUREGERMANCLOUD": upstream accepts the name, but the
		// cloud is closed and every fetch fails; denied here (docs/providers/azure.md)
		"german cloud": {params: azWith(map[string]string{"cloudName": "AZUREGERMANCLOUD"}, azSecret1), deny: "parameters.cloudName"},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "check azure cloud env file path is set":
		// the file is read by the fetching process (upstream's test fails only because it is absent there)
		"azure stack cloud with env file": {params: azWith(map[string]string{"cloudName": "AzureStackCloud", "cloudEnvFileName": "/etc/kubernetes/akscustom.json"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider.go setAzureEnvironmentFilePath: without cloudEnvFileName go-autorest reads an unset
		// AZURE_ENVIRONMENT_FILEPATH and fails (EnvironmentFromFile "")
		"azure stack cloud without env file": {params: azWith(map[string]string{"cloudName": "AzureStackCloud"}, azSecret1), deny: "parameters.cloudName"},
		// pkg/provider/types/parameters_test.go TestGetKeyVaultName "trim spaces"
		"keyvaultName trimmed": {params: azWith(map[string]string{"keyvaultName": " test "}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetVaultURL "vault name > 24"
		"vault name too long": {params: azWith(map[string]string{"keyvaultName": "longkeyvaultnamewhichisnotvalid"}, azSecret1), deny: "parameters.keyvaultName"},
		// pkg/provider/provider_test.go TestGetVaultURL "vault name < 3"
		"vault name too short": {params: azWith(map[string]string{"keyvaultName": "kv"}, azSecret1), deny: "parameters.keyvaultName"},
		// pkg/provider/provider_test.go TestGetVaultURL "vault name contains non alpha-numeric chars"
		"vault name underscore": {params: azWith(map[string]string{"keyvaultName": "kv_test"}, azSecret1), deny: "parameters.keyvaultName"},
		// pkg/provider/provider_test.go TestGetVaultURL "valid vault name in public cloud"
		"valid vault name": {params: azWith(map[string]string{"keyvaultName": "testkv"}, azSecret1), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider.go GetSecretsStoreObjectContent: getVaultURL runs only after "len(keyVaultObjects) == 0 → return nil"
		"bad vault name without objects": {params: map[string]string{"keyvaultName": "kv_test", "tenantID": "tid", "objects": "array: []"}, warn: []string{"parameters.keyvaultName", "no objects"}},

		// --- the objects parameter ---

		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "objects array not set"
		"objects array not set": {params: map[string]string{"keyvaultName": "testKV", "tenantId": "tid", "useVMManagedIdentity": "true"}, deny: "parameters.objects"},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "objects not configured as an array"
		"objects not an array": {params: map[string]string{"keyvaultName": "testKV", "tenantId": "tid", "objects": "\n        - |\n          objectName: secret1\n          objectType: secret\n          objectVersion: \"\""}, deny: "parameters.objects"},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "objects array is empty"
		"objects array is empty": {params: map[string]string{"keyvaultName": "testKV", "tenantId": "tid", "useVMManagedIdentity": "true", "objects": "\n      array:"}},
		// pkg/provider/types/parameters_test.go TestGetObjectsArrayError
		"objects invalid": {params: map[string]string{"keyvaultName": "testKV", "tenantId": "tid", "objects": "invalid"}, deny: "parameters.objects"},
		// pkg/provider/types/parameters_test.go TestGetObjectsArray "valid yaml"
		"objects valid yaml": {params: map[string]string{"keyvaultName": "testKV", "tenantId": "tid", "objects": "array:\n- |\n  filePermission: \"\"\n  objectAlias: \"\"\n  objectEncoding: \"\"\n  objectFormat: \"\"\n  objectName: secret1\n  objectType: cert\n  objectVersion: \"\"\n- |\n  filePermission: \"\"\n  objectAlias: \"\"\n  objectEncoding: \"\"\n  objectFormat: \"\"\n  objectName: secret2\n  objectType: cert\n  objectVersion: \"\"\n"},
			files: []FileSpec{f("secret1", 0), f("secret2", 0)}},
		// pkg/provider/provider.go GetSecretsStoreObjectContent: yaml.Unmarshal of an item into KeyVaultObject fails
		"object not a mapping": {params: azDocs("just a string\n"), deny: azA0},
		// pkg/provider/types/types.go KeyVaultObject.ObjectVersionHistory int32: a quoted number does not decode
		"history quoted": {params: azSecretWith("objectVersionHistory: \"5\"\n"), deny: azA0},
		// pkg/provider/provider_test.go TestFormatKeyVaultObject "leading and trailing whitespace trimmed from all fields"
		"fields trimmed": {params: azDocs("objectName: \" secret1 \"\nobjectType: \" secret \"\nobjectAlias: \" alias \"\nobjectEncoding: \" base64 \"\nfilePermission: \" 0600 \"\n"), files: []FileSpec{f("alias", 0o600)}},

		// --- object names and types ---

		// pkg/provider/validate_test.go TestValidateFilePath "file name is empty" (neither objectName nor objectAlias)
		"file name is empty": {params: azDocs("objectName: \"\"\nobjectType: secret\n"), deny: azA0 + ".objectName"},
		// pkg/provider/provider.go getSecret: an empty objectName fails the SDK's GetSecret even with an alias
		"alias without name": {params: azDocs("objectAlias: a\nobjectType: secret\n"), deny: azA0 + ".objectName"},
		// Key Vault object names are 1-127 of [0-9a-zA-Z-]; upstream asks Key Vault for any other name and fails
		"object name underscore": {params: azDocs("objectName: my_secret\nobjectType: secret\n"), deny: azA0 + ".objectName"},
		// pkg/provider/provider.go getKeyVaultObjectContent: objectType is compared exactly ("Invalid vaultObjectTypes")
		"objectType upper case": {params: azDocs("objectName: secret1\nobjectType: Secret\n"), deny: azA0 + ".objectType"},
		// pkg/provider/provider.go getKeyVaultObjectContent default case: an empty objectType
		"objectType missing": {params: azDocs("objectName: secret1\n"), deny: azA0 + ".objectType"},
		// pkg/provider/provider.go getKeyVaultObjectContent default case: "certificate" is not "cert"
		"objectType certificate": {params: azDocs("objectName: secret1\nobjectType: certificate\n"), deny: azA0 + ".objectType"},
		// pkg/provider/types/parameters_test.go TestGetFileName "object alias and object name"
		"alias and name": {params: azDocs("objectName: test\nobjectType: secret\nobjectAlias: alias\n"), files: []FileSpec{f("alias", 0)}},
		// pkg/provider/types/parameters_test.go TestGetFileName "object name only"
		"name only": {params: azDocs("objectName: test\nobjectType: key\n"), files: []FileSpec{f("test", 0)}},

		// --- objectFormat ---

		// pkg/provider/validate_test.go TestValidateObjectFormat "no object format specified"
		"no object format": {params: azDocs("objectName: c\nobjectType: cert\n"), files: []FileSpec{f("c", 0)}},
		// pkg/provider/validate_test.go TestValidateObjectFormat "object format not valid"
		"object format not valid": {params: azSecretWith("objectFormat: pkcs\n"), deny: azA0 + ".objectFormat"},
		// pkg/provider/validate_test.go TestValidateObjectFormat "object format PFX, but object type not secret"
		"pfx on a cert": {params: azDocs("objectName: c\nobjectType: cert\nobjectFormat: pfx\n"), deny: azA0 + ".objectFormat"},
		// pkg/provider/validate_test.go TestValidateObjectFormat "object format PFX case insensitive check"
		"PFX on a secret": {params: azSecretWith("objectFormat: PFX\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/validate_test.go TestValidateObjectFormat "valid object format and type"
		"pfx on a secret": {params: azSecretWith("objectFormat: pfx\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/validate.go validateObjectFormat: the pfx-only-for-secret check is an exact comparison, so
		// "PFX" on a cert passes and getCertificate ignores the format (PEM written)
		"PFX on a cert": {params: azDocs("objectName: c\nobjectType: cert\nobjectFormat: PFX\n"), warn: []string{azA0 + ".objectFormat", "written as PEM"}, files: []FileSpec{f("c", 0)}},
		// same as above for a key (getKey writes the public key as PEM)
		"Pfx on a key": {params: azDocs("objectName: k\nobjectType: key\nobjectFormat: Pfx\n"), warn: []string{azA0 + ".objectFormat", "public key"}, files: []FileSpec{f("k", 0)}},
		// pkg/provider/validate.go validateObjectFormat: EqualFold for pem
		"PEM on a key": {params: azDocs("objectName: k\nobjectType: key\nobjectFormat: PEM\n"), files: []FileSpec{f("k", 0)}},
		// pkg/provider/validate.go validateObjectFormat: EqualFold for pem, any case
		"Pem on a secret": {params: azSecretWith("objectFormat: Pem\n"), files: []FileSpec{f("secret1", 0)}},

		// --- objectEncoding ---

		// pkg/provider/validate_test.go TestValidateObjectEncoding "No encoding specified"
		"no encoding": {params: azDocs("objectName: c\nobjectType: cert\n"), files: []FileSpec{f("c", 0)}},
		// pkg/provider/validate_test.go TestValidateObjectEncoding "Invalid encoding specified"
		"encoding utf-16": {params: azSecretWith("objectEncoding: utf-16\n"), deny: azA0 + ".objectEncoding"},
		// pkg/provider/validate.go validateObjectEncoding: "utf8" is none of hex, base64, utf-8
		"encoding utf8": {params: azSecretWith("objectEncoding: utf8\n"), deny: azA0 + ".objectEncoding"},
		// pkg/provider/validate_test.go TestValidateObjectEncoding "Object Encoding Base64, but objectType is not secret"
		"encoding on a cert": {params: azDocs("objectName: c\nobjectType: cert\nobjectEncoding: base64\n"), deny: azA0 + ".objectEncoding"},
		// pkg/provider/validate_test.go TestValidateObjectEncoding "Object Encoding case-insensitive check"
		"encoding BasE64": {params: azSecretWith("objectEncoding: BasE64\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/validate_test.go TestValidateObjectEncoding "Valid ObjectEncoding and Type"
		"encoding base64": {params: azSecretWith("objectEncoding: base64\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetContentBytes "Hex encoding" (any case, EqualFold)
		"encoding HEX": {params: azSecretWith("objectEncoding: HEX\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetContentBytes "UTF-8 encoding"
		"encoding UTF-8": {params: azSecretWith("objectEncoding: UTF-8\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/validate.go validateObjectEncoding is an exact "secret" comparison, even on a key
		"encoding on a key": {params: azDocs("objectName: k\nobjectType: key\nobjectEncoding: utf-8\n"), deny: azA0 + ".objectEncoding"},

		// --- file names ---

		// pkg/provider/validate_test.go TestValidateFilePath "file name is absolute path"
		"absolute alias": {params: azSecretWith("objectAlias: /secret1\n"), deny: azA0 + ".objectAlias"},
		// pkg/provider/validate_test.go TestValidateFilePath "file name contains '..'"
		"alias ending in ..": {params: azSecretWith("objectAlias: secret1/..\n"), deny: azA0 + ".objectAlias"},
		// pkg/provider/validate_test.go TestValidateFilePath "file name starts with '..'"
		"alias starting with ../": {params: azSecretWith("objectAlias: ../secret1\n"), deny: azA0 + ".objectAlias"},
		// pkg/provider/validate.go validateFileName "fallback logic": any ".." substring
		"alias with .. inside a name": {params: azSecretWith("objectAlias: a..b\n"), deny: azA0 + ".objectAlias"},
		// pkg/provider/validate_test.go TestValidateFilePath "valid file name"
		"valid file name": {params: azSecretWith("objectAlias: secret1\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/validate.go validateFileName allows separators; the driver's writer nests them
		"nested alias": {params: azSecretWith("objectAlias: dir/sub/file\n"), files: []FileSpec{f("dir/sub/file", 0)}},
		// secrets-store-csi-driver pkg/util/fileutil/writer.go Validate: filepath.Clean(path) != path fails the mount
		"alias with trailing slash": {params: azSecretWith("objectAlias: dir/\n"), deny: azA0 + ".objectAlias"},
		// secrets-store-csi-driver pkg/util/fileutil/writer.go Validate: "./a" is not clean
		"alias with dot element": {params: azSecretWith("objectAlias: ./a\n"), deny: azA0 + ".objectAlias"},
		// validateFileName and the driver allow a backslash on Linux; refused here on purpose (docs/providers/azure.md)
		"alias with backslash": {params: azSecretWith("objectAlias: 'a\\b'\n"), deny: azA0 + ".objectAlias"},
		// secrets-store-csi-driver atomic_writer.go validatePath: "..data" at the top is the writer's own
		"alias ..data": {params: azSecretWith("objectAlias: ..data\n"), deny: azA0 + ".objectAlias"},

		// --- filePermission ---

		// pkg/provider/types/parameters_test.go TestGetFilePermission "valid file permission"
		"filePermission 0600": {params: azSecretWith("filePermission: \"0600\"\n"), files: []FileSpec{f("secret1", 0o600)}},
		// pkg/provider/types/parameters_test.go TestGetFilePermission "empty file permission" (the mount's default)
		"filePermission empty": {params: azSecretWith("filePermission: \"\"\n"), files: []FileSpec{f("secret1", 0)}},
		// test/e2e/secret_file_permission_test.go "should mount secret file with given permission" (0755)
		"filePermission 0755 (e2e)": {params: azMarshal(t, nil, AzureObject{ObjectName: "secret1", ObjectType: "secret", FilePermissionText: "0755"}), files: []FileSpec{f("secret1", 0o755)}},
		// pkg/provider/types/types.go FilePermission is a string: yaml.v3 decodes the unquoted 0640 as its text
		"filePermission unquoted": {params: azSecretWith("filePermission: 0640\n"), files: []FileSpec{f("secret1", 0o640)}},
		// pkg/provider/types/parameters.go GetFilePermission: ParseInt(s, 8, 32) needs no leading zero
		"filePermission 644": {params: azSecretWith("filePermission: \"644\"\n"), files: []FileSpec{f("secret1", 0o644)}},
		// pkg/provider/types/parameters_test.go TestGetFilePermissionError "invalid file permission" (0900): the provider
		// ignores the error (provider.go "file.FileMode, _ = ...GetFilePermission") and the driver writes mode 0
		"filePermission 0900": {params: azSecretWith("filePermission: \"0900\"\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// pkg/provider/types/parameters_test.go TestGetFilePermissionError "invalid octal number" (900)
		"filePermission 900": {params: azSecretWith("filePermission: \"900\"\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// GetFilePermission: ParseInt with base 8 refuses the 0o prefix, so mode 0
		"filePermission 0o600": {params: azSecretWith("filePermission: 0o600\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// GetFilePermission: a symbolic mode does not parse, so mode 0
		"filePermission symbolic": {params: azSecretWith("filePermission: rw-r--r--\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// GetFilePermission: "0000" is mode 0, written 0000 by the driver's writer
		"filePermission 0000": {params: azSecretWith("filePermission: \"0000\"\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// driver atomic_writer.go os.Chmod(os.FileMode(01000)) keeps no permission bit: 0000
		"filePermission 01000": {params: azSecretWith("filePermission: \"01000\"\n"), warn: []string{azA0 + ".filePermission", "0000"}, files: []FileSpec{f0("secret1")}},
		// driver atomic_writer.go os.Chmod keeps the permission bits of 01640
		"filePermission 01640": {params: azSecretWith("filePermission: \"01640\"\n"), warn: []string{azA0 + ".filePermission", "0640"}, files: []FileSpec{f("secret1", 0o640)}},
		// GetFilePermission parses a sign; a negative mode would become Go mode-type bits; refused (docs/providers/azure.md)
		"filePermission negative": {params: azSecretWith("filePermission: \"-644\"\n"), deny: azA0 + ".filePermission"},
		// above 07777 is not a Unix permission (docs/providers/azure.md)
		"filePermission 010000": {params: azSecretWith("filePermission: \"010000\"\n"), deny: azA0 + ".filePermission"},
		// GetFilePermission: ParseInt accepts a plus sign
		"filePermission +600": {params: azSecretWith("filePermission: \"+600\"\n"), files: []FileSpec{f("secret1", 0o600)}},

		// --- objectVersionHistory ---

		// pkg/provider/types/parameters_test.go TestIsSyncingSingleVersion "object version history set to 0"
		"history 0": {params: azSecretWith("objectVersionHistory: 0\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters_test.go TestIsSyncingSingleVersion "object version history set to 1"
		"history 1": {params: azSecretWith("objectVersionHistory: 1\n"), files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters.go IsSyncingSingleVersion: "<= 1", so a negative value is one version
		"history -1": {params: azSecretWith("objectVersionHistory: -1\n"), warn: []string{azA0 + ".objectVersionHistory", "below 1"}, files: []FileSpec{f("secret1", 0)}},
		// pkg/provider/types/parameters_test.go TestIsSyncingSingleVersion "object version history set higher than 1"
		"history 4": {params: azSecretWith("objectVersionHistory: 4\n"), warn: hist, files: []FileSpec{azDir("secret1", 0)}},
		// pkg/provider/provider_test.go TestGetLatestNKeyVaultObjects "filename is name/index when no alias provided"
		"history without alias": {params: azDocs("objectName: secret1\nobjectType: secret\nobjectVersionHistory: 2\nfilePermission: \"0600\"\n"), warn: hist, files: []FileSpec{azDir("secret1", 0o600)}},
		// pkg/provider/provider_test.go TestGetLatestNKeyVaultObjects "starts at ObjectVersion when specified"
		"history from a version": {params: azDocs("objectName: secret1\nobjectType: secret\nobjectAlias: alias\nobjectVersion: v2\nobjectVersionHistory: 3\n"), warn: hist, files: []FileSpec{azDir("alias", 0)}},
		// pkg/provider/types/parameters_test.go TestGetObjectUID "syncing multiple versions with multiple levels in path"
		"history nested alias": {params: azDocs("objectName: multiple-versions\nobjectType: secret\nobjectAlias: folder/multiple-versions\nobjectVersionHistory: 10\n"), warn: hist, files: []FileSpec{azDir("folder/multiple-versions", 0)}},
		// pkg/provider/provider.go getLatestNKeyVaultObjects: filepath.Join cleans the alias ("dir/" → dir/0)
		"history alias with trailing slash": {params: azSecretWith("objectAlias: dir/\nobjectVersionHistory: 2\n"), warn: hist, files: []FileSpec{azDir("dir", 0)}},
		// getLatestNKeyVaultObjects: filepath.Join(".", "0") would put the versions at the top; refused (docs/providers/azure.md)
		"history alias dot": {params: azSecretWith("objectAlias: .\nobjectVersionHistory: 2\n"), deny: azA0 + ".objectAlias"},
		// test/e2e/multiple_secret_versions_test.go BeforeEach (three objects with objectVersionHistory 5)
		"history e2e": {params: azMarshal(t, nil,
			AzureObject{ObjectName: "secret1", ObjectType: "secret", ObjectVersionHistory: 5},
			AzureObject{ObjectName: "secret1", ObjectType: "secret", ObjectAlias: "SECRET_1", ObjectVersionHistory: 5},
			AzureObject{ObjectName: "pemcert1", ObjectType: "secret", ObjectVersionHistory: 5}),
			warn:  []string{"array[0].objectVersionHistory", "array[1].objectVersionHistory", "array[2].objectVersionHistory"},
			files: []FileSpec{azDir("SECRET_1", 0), azDir("pemcert1", 0), azDir("secret1", 0)}},
		// secrets-store-csi-driver atomic_writer.go writePayloadToDir: a file beside the version files of a directory
		"file beside a history directory": {params: azDocs("objectName: c\nobjectType: secret\nobjectAlias: certs\nobjectVersionHistory: 2\n", "objectName: ca\nobjectType: cert\nobjectAlias: certs/ca.pem\n"),
			warn: []string{azA0 + ".objectVersionHistory"}, files: []FileSpec{azDir("certs", 0), f("certs/ca.pem", 0)}},
		// atomic_writer.go writePayloadToDir: a file that is (or is under) a version file name; refused (docs/providers/azure.md)
		"file under a version file": {params: azDocs("objectName: c\nobjectType: secret\nobjectAlias: certs\nobjectVersionHistory: 2\n", "objectName: ca\nobjectType: cert\nobjectAlias: certs/0/x\n"), deny: "parameters.objects.array[1].objectAlias"},

		// --- several objects ---

		// test/e2e/secret_test.go BeforeEach (secret1, alias SECRET_1, pemcert1)
		"secrets e2e": {params: azMarshal(t, nil,
			AzureObject{ObjectName: "secret1", ObjectType: "secret"},
			AzureObject{ObjectName: "secret1", ObjectType: "secret", ObjectAlias: "SECRET_1"},
			AzureObject{ObjectName: "pemcert1", ObjectType: "secret"}),
			files: []FileSpec{f("SECRET_1", 0), f("pemcert1", 0), f("secret1", 0)}},
		// test/e2e/key_test.go BeforeEach (key1 and alias KEY_1)
		"keys e2e": {params: azMarshal(t, nil,
			AzureObject{ObjectName: "key1", ObjectType: "key"},
			AzureObject{ObjectName: "key1", ObjectType: "key", ObjectAlias: "KEY_1"}),
			files: []FileSpec{f("KEY_1", 0), f("key1", 0)}},
		// test/e2e/custom_cloudenv_test.go BeforeEach (AzureStackCloud with cloudEnvFileName)
		"custom cloud e2e": {params: azMarshal(t, map[string]string{"cloudName": "AzureStackCloud", "cloudEnvFileName": "/etc/kubernetes/custom_environment.json"},
			AzureObject{ObjectName: "secret1", ObjectType: "secret"},
			AzureObject{ObjectName: "secret1", ObjectType: "secret", ObjectAlias: "SECRET_1"}),
			files: []FileSpec{f("SECRET_1", 0), f("secret1", 0)}},
		// pkg/provider/provider.go GetSecretsStoreObjectContent returns both files, and the driver's
		// fileutil/writer.go WritePayloads keys them by path: the later (the key) wins
		"secret and key of one name": {params: azDocs("objectName: x\nobjectType: secret\nfilePermission: \"0600\"\n", "objectName: x\nobjectType: key\n"),
			warn: []string{"parameters.objects.array[1].objectAlias", "last"}, files: []FileSpec{f("x", 0)}},
		// same, a secret, a key and a certificate of one name: the certificate wins
		"secret key and cert of one name": {params: azDocs("objectName: x\nobjectType: secret\n", "objectName: x\nobjectType: key\n", "objectName: x\nobjectType: cert\nfilePermission: \"0640\"\n"),
			warn: []string{"parameters.objects.array[2].objectAlias", "3 objects"}, files: []FileSpec{f("x", 0o640)}},
		// same with version histories of one alias: the directories merge, the later object's files win
		"two histories of one alias": {params: azDocs("objectName: a\nobjectType: secret\nobjectAlias: h\nobjectVersionHistory: 2\n", "objectName: b\nobjectType: secret\nobjectAlias: h\nobjectVersionHistory: 3\n"),
			warn: []string{"parameters.objects.array[1].objectAlias", "array[1].objectVersionHistory"}, files: []FileSpec{azDir("h", 0)}},
		// atomic_writer.go writePayloadToDir: a file and a directory of versions at one path cannot both be written
		"file and history of one name": {params: azDocs("objectName: x\nobjectType: secret\n", "objectName: x\nobjectType: key\nobjectVersionHistory: 2\n"), deny: "parameters.objects.array[0].objectAlias"},
	})

	// test/e2e/certificates_test.go BeforeEach: eleven objects, certificates read as cert, key and secret (PEM and PFX).
	t.Run("certificates e2e", func(t *testing.T) {
		var objs []AzureObject
		var want []FileSpec
		for _, n := range []string{"pemcert1", "pkcs12cert1", "ecccert1"} {
			objs = append(objs, AzureObject{ObjectName: n, ObjectType: "cert"},
				AzureObject{ObjectName: n, ObjectType: "key", ObjectAlias: n + "-pub-key"},
				AzureObject{ObjectName: n, ObjectType: "secret", ObjectAlias: n + "-secret"})
			want = append(want, f(n, 0), f(n+"-pub-key", 0), f(n+"-secret", 0))
		}
		for _, n := range []string{"pkcs12cert1", "ecccert1"} {
			objs = append(objs, AzureObject{ObjectName: n, ObjectType: "secret", ObjectAlias: n + "-secret-pfx", ObjectFormat: "pfx"})
			want = append(want, f(n+"-secret-pfx", 0))
		}
		c, err := ParseSpec("ns", "c", ProviderAzure, azMarshal(t, nil, objs...))
		if err != nil {
			t.Fatal(err)
		}
		got := c.Files()
		if len(got) != len(want) || len(c.Warnings) != 0 {
			t.Fatalf("files %+v warnings %q, want %d files and no warning", got, c.Warnings, len(want))
		}
		have := map[FileSpec]bool{}
		for _, g := range got {
			have[g] = true
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("file %+v missing from %+v", w, got)
			}
		}
		if strings.Count(c.Parameters["objects"], "objectFormat: pfx") != 2 {
			t.Errorf("the e2e objects were not marshalled as expected: %s", c.Parameters["objects"])
		}
	})
}
