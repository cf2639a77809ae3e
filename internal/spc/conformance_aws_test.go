package spc

import (
	"strings"
	"testing"
)

// awsIn is a class in region us-west-2 (the upstream descriptor tests'
// singleRegion) with the given objects YAML; kv adds parameters in pairs.
func awsIn(objects string, kv ...string) map[string]string {
	m := map[string]string{"region": "us-west-2", "objects": objects}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// awsSM is one Secrets Manager object named name with extra flow-mapping
// members.
func awsSM(name, extra string) string {
	s := "- {objectName: " + name + ", objectType: secretsmanager"
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

// Regions of the upstream failover tests (us-west-1 primary, us-west-2
// failover).
var awsTwoRegions = []string{"region", "us-west-1", "failoverRegion", "us-west-2"}

const (
	awsSMARN  = "arn:aws:secretsmanager:us-west-2:123456789012:secret:/feaw"
	awsSSMARN = "arn:aws:ssm:us-west-2:123456789012:parameter/feaw"
)

// awsIntegClass is the objects list of the upstream integration test's
// class, with its placeholders filled in.
const awsIntegClass = `
    - objectName: "ParameterStoreTest1"
      objectType: "ssmparameter"
    - objectName: "ParameterStoreTestWithLongName"
      objectAlias: "ParameterStoreTest2"
      objectType: "ssmparameter"
    - objectName: "ParameterStoreRotationTest"
      objectType: "ssmparameter"
    - objectName: "SecretsManagerRotationTest"
      objectType: "secretsmanager"
    - objectName: "SecretsManagerTest1"
      objectType: "secretsmanager"
    - objectName: arn:aws:secretsmanager:us-west-2:123456789012:secret:SecretsManagerTest2
      objectAlias: "SecretsManagerTest2"
      failoverObject:
        objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretsManagerTest2
    - objectName: "SecretsManagerSync"
      objectType: "secretsmanager"
    - objectName: "jsonSsm"
      objectType: "ssmparameter"
      jmesPath:
          - Path: "username"
            ObjectAlias: "ssmUsername"
          - Path: "password"
            ObjectAlias: "ssmPassword"
    - objectName: "secretsManagerJson"
      objectType: "secretsmanager"
      jmesPath:
          - Path: "username"
            ObjectAlias: "secretsManagerUsername"
          - Path: "password"
            ObjectAlias: "secretsManagerPassword"
`

// TestConformanceAWS runs classes drawn from the upstream AWS provider
// (github.com/aws/secrets-store-csi-driver-provider-aws; files named below
// are in that repository) through admission: verdict, the field a denial
// names, warnings and the files (names, modes; 0 is the mount's default).
// Where the verdict differs from upstream on purpose, the comment says so
// and docs/providers/aws.md lists it.
func TestConformanceAWS(t *testing.T) {
	runConformance(t, ProviderAWS, map[string]confCase{
		// provider/secret_descriptor_test.go TestGetSecretTypeSM: an SM ARN implies the type; "/" becomes "_"
		"SM ARN implies type": {params: awsIn("- objectName: " + awsSMARN),
			files: []FileSpec{f("arn:aws:secretsmanager:us-west-2:123456789012:secret:_feaw", 0)}},
		// provider/secret_descriptor_test.go TestGetSecretTypeSSM, TestSSMWithArn
		"SSM ARN implies type": {params: awsIn("- objectName: " + awsSSMARN),
			files: []FileSpec{f("arn:aws:ssm:us-west-2:123456789012:parameter_feaw", 0)}},
		// provider/secret_descriptor.go typeMap: "ssmparameter" is also accepted as an ARN service
		"ssmparameter ARN service": {params: awsIn("- {objectName: 'arn:aws:ssmparameter:us-west-2:123456789012:parameter/feaw', objectAlias: p}"),
			files: []FileSpec{f("p", 0)}},
		// provider/secret_descriptor_test.go TestNoNamePresent
		"no objectName": {params: awsIn("- {objectType: secretsmanager}"), deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestNoTypePresent ("arn::" is not an ARN)
		"malformed ARN": {params: awsIn("- objectName: 'arn::'"), deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestUnknownService
		"ARN of another service": {params: awsIn("- objectName: arn:aws:sts:us-west-2:123456789012:parameter/feaw"), deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestNoObjectTypeWoArn
		"name without objectType": {params: awsIn("- objectName: SomeSecret"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor_test.go TestErrorYaml
		"error yaml (no objectType)": {params: awsIn("\n          - objectName: secret1"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor_test.go TestInvalidObjectType
		"objectType sts": {params: awsIn("- {objectName: SomeName, objectType: sts}"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor_test.go TestSSMObjectType: "ssm" is an ARN service, not an objectType
		"objectType ssm": {params: awsIn("- {objectName: SomeName, objectType: ssm}"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor.go typeMap lookup is case-sensitive
		"objectType in mixed case": {params: awsIn("- {objectName: SomeName, objectType: SecretsManager}"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor_test.go TestObjectTypeMisMatchArn
		"objectType does not match ARN": {params: awsIn("- {objectName: '" + awsSMARN + "', objectType: ssmparameter}"), deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor.go validateObjectName: both given and agreeing
		"objectType agrees with ARN": {params: awsIn("- {objectName: '" + awsSSMARN + "', objectType: ssmparameter, objectAlias: p}"), files: []FileSpec{f("p", 0)}},
		// provider/secret_descriptor_test.go TestSSMBothVersionandLabel
		"ssm version and label": {params: awsIn("- {objectName: SomeParameter, objectType: ssmparameter, objectVersion: VersionId, objectVersionLabel: SomeLabel}"),
			deny: "parameters.objects[0].objectVersionLabel"},
		// provider/secret_descriptor.go validateSecretDescriptor: the version/label rule is for SSM only
		"secretsmanager version and label": {params: awsIn(awsSM("s", "objectVersion: v1, objectVersionLabel: AWSCURRENT")), files: []FileSpec{f("s", 0)}},
		// sigs.k8s.io/yaml (upstream's decoder) turns an unquoted number into the string field's text
		"unquoted objectVersion number": {params: awsIn("- {objectName: p, objectType: ssmparameter, objectVersion: 3}"), files: []FileSpec{f("p", 0)}},
		// provider/secret_descriptor_test.go TestConflictingNameWoAliasAndVersionLabel (case 4)
		"same name, no alias, no label": {params: awsIn("- {objectName: secret1, objectType: ssmparameter}\n- {objectName: secret1, objectType: ssmparameter}"),
			deny: "parameters.objects[1].objectName"},
		// provider/secret_descriptor_test.go TestConflictingNameAndAliasWoVersionLabel (case 1)
		"same name and alias, no label": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasOne, objectType: ssmparameter}"),
			deny: "parameters.objects[1].objectName"},
		// provider/secret_descriptor_test.go TestConflictingNameAndAliasWithVersionLabel ("found duplicate object alias")
		"same name and alias, two labels": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSPREVIOUS, objectType: ssmparameter}"),
			deny: "parameters.objects[1].objectAlias"},
		// provider/secret_descriptor_test.go TestConflictingNameAndNotAliasWoVersionLabel
		"same name, two aliases": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasTwo, objectType: ssmparameter}"),
			files: []FileSpec{f("aliasOne", 0), f("aliasTwo", 0)}},
		// provider/secret_descriptor_test.go TestConflictingNameAndNotAliasWithVersionLabel
		"same name, two aliases, two labels": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasTwo, objectVersionLabel: AWSPREVIOUS, objectType: ssmparameter}"),
			files: []FileSpec{f("aliasOne", 0), f("aliasTwo", 0)}},
		// provider/secret_descriptor_test.go TestConflictingNameAndVersionLabelWoAlias (case 2)
		"same name and label, no alias": {params: awsIn("- {objectName: secret1, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}"),
			deny: "parameters.objects[1].objectName"},
		// provider/secret_descriptor_test.go TestConflictingNameAndVersionLabelAndAlias (case 3)
		"same name, alias and label": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}"),
			deny: "parameters.objects[1].objectName"},
		// provider/secret_descriptor_test.go TestConflictingNameAndNotVersionLabelWoAlias: upstream serves it,
		// both write file secret1 and the later one wins; admitted with the duplicate warning
		"same name, two labels, no alias": {params: awsIn("- {objectName: secret1, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectVersionLabel: AWSPREVIOUS, objectType: ssmparameter, filePermission: '0600'}"),
			warn:  []string{"parameters.objects[1].objectName:", `"secret1"`, "parameters.objects[0].objectName, parameters.objects[1].objectName"},
			files: []FileSpec{f("secret1", 0o600)}},
		// same (NewSecretDescriptorList case table), Secrets Manager labels
		"same SM name, two labels, no alias": {params: awsIn(awsSM("db", "objectVersionLabel: AWSCURRENT") + "\n" + awsSM("db", "objectVersionLabel: AWSPREVIOUS")),
			warn: []string{"parameters.objects[1].objectName:", `"db"`}, files: []FileSpec{f("db", 0)}},
		// provider/secret_descriptor.go NewSecretDescriptorList: one label, one without, no alias matches no case
		"same name, one label, no alias": {params: awsIn(awsSM("db", "") + "\n" + awsSM("db", "objectVersionLabel: AWSPREVIOUS")),
			warn: []string{"parameters.objects[1].objectName:"}, files: []FileSpec{f("db", 0)}},
		// provider/secret_descriptor.go NewSecretDescriptorList: seenNames keeps the last entry of a name only,
		// so a third entry equal to the first but not to the second is admitted
		"duplicate compared with the last only": {params: awsIn(awsSM("db", "objectVersionLabel: A") + "\n" + awsSM("db", "objectAlias: x") + "\n" + awsSM("db", "objectVersionLabel: A")),
			warn: []string{"parameters.objects[2].objectName:"}, files: []FileSpec{f("db", 0), f("x", 0)}},
		// provider/secret_descriptor_test.go TestConflictingNameWithAliasAndVersionLabel
		"same name, aliases and labels differ": {params: awsIn("- {objectName: secret1, objectAlias: aliasOne, objectVersionLabel: AWSCURRENT, objectType: ssmparameter}\n- {objectName: secret1, objectAlias: aliasTwo, objectVersionLabel: AWSPREVIOUS, objectType: ssmparameter}"),
			files: []FileSpec{f("aliasOne", 0), f("aliasTwo", 0)}},
		// provider/secret_descriptor_test.go TestConflictingAlias
		"two names, one alias": {params: awsIn("- {objectName: secret1, objectType: ssmparameter, objectAlias: aliasOne}\n- {objectName: secret2, objectType: ssmparameter, objectAlias: aliasOne}"),
			deny: "parameters.objects[1].objectAlias"},
		// provider/secret_descriptor_test.go TestConflictingAliasJMES (path "username": upstream's ".username" does not compile)
		"jmesPath alias equal to an object alias": {params: awsIn("- {objectName: secret1, objectType: ssmparameter, objectAlias: aliasOne}\n- {objectName: secret2, objectType: ssmparameter, jmesPath: [{path: username, objectAlias: aliasOne}]}"),
			deny: "parameters.objects[1].jmesPath[0].objectAlias"},
		// provider/secret_descriptor.go NewSecretDescriptorList: seenAliases holds jmesPath aliases, so a later objectAlias collides
		"object alias equal to an earlier jmesPath alias": {params: awsIn(awsSM("a", "jmesPath: [{path: user, objectAlias: user}]") + "\n" + awsSM("b", "objectAlias: user")),
			deny: "parameters.objects[1].objectAlias"},
		// provider/secret_descriptor.go NewSecretDescriptorList: two jmesPath entries of one object with one alias
		"two jmesPath entries with one alias": {params: awsIn(awsSM("a", "jmesPath: [{path: user, objectAlias: x}, {path: pass, objectAlias: x}]")),
			deny: "parameters.objects[0].jmesPath[1].objectAlias"},
		// provider/secret_descriptor.go NewSecretDescriptorList: seenAliases never holds object names, so a
		// jmesPath alias equal to another object's name is served (the later file wins); duplicate warning
		"jmesPath alias equal to another object's name": {params: awsIn(awsSM("user", "") + "\n" + awsSM("db", "jmesPath: [{path: user, objectAlias: user, filePermission: '0400'}]")),
			warn:  []string{"parameters.objects[1].jmesPath[0].objectAlias:", `"user"`, "parameters.objects[0].objectName, parameters.objects[1].jmesPath[0].objectAlias"},
			files: []FileSpec{f("db", 0), f("user", 0o400)}},
		// same, the object named after an earlier jmesPath alias (objectAlias empty is not checked)
		"object name equal to an earlier jmesPath alias": {params: awsIn(awsSM("db", "jmesPath: [{path: user, objectAlias: user}]") + "\n" + awsSM("user", "filePermission: '0600'")),
			warn: []string{"parameters.objects[1].objectName:", `"user"`}, files: []FileSpec{f("db", 0), f("user", 0o600)}},
		// same, an objectAlias equal to another object's name
		"object alias equal to another object's name": {params: awsIn(awsSM("x", "") + "\n" + awsSM("y", "objectAlias: x")),
			warn: []string{"parameters.objects[1].objectAlias:", `"x"`}, files: []FileSpec{f("x", 0)}},
		// provider/secret_descriptor.go: aliases compared as written; "a/b" and "a_b" are one file after translation
		"aliases equal after translation": {params: awsIn(awsSM("x", "objectAlias: a/b") + "\n" + awsSM("y", "objectAlias: a_b")),
			warn: []string{"parameters.objects[1].objectAlias:", `"a_b"`}, files: []FileSpec{f("a_b", 0)}},
		// provider/secret_descriptor_test.go TestMissingAliasJMES
		"jmesPath without alias": {params: awsIn("- {objectName: secret2, objectType: ssmparameter, jmesPath: [{path: .username}]}"),
			deny: "parameters.objects[0].jmesPath[0].objectAlias"},
		// provider/secret_descriptor_test.go TestMissingPathJMES
		"jmesPath without path": {params: awsIn("- {objectName: secret2, objectType: ssmparameter, jmesPath: [{objectAlias: aliasOne}]}"),
			deny: "parameters.objects[0].jmesPath[0].path"},
		// provider/secret_value.go getJsonSecrets: jmespath.Search fails the mount on a bad expression
		// ("Invalid JMES Path"); decided at admission here by spc.CompileAWSJMESPath
		"jmesPath syntax error": {params: awsIn(awsSM("db", "jmesPath: [{path: 'dbUser.[', objectAlias: u}]")), deny: "parameters.objects[0].jmesPath[0].path"},
		// same: upstream's TestConflictingAliasJMES path ".username" is not an expression
		"jmesPath leading dot": {params: awsIn(awsSM("db", "jmesPath: [{path: .username, objectAlias: u}]")), deny: "parameters.objects[0].jmesPath[0].path"},
		// server/server_test.go "Mount Json Success": nested paths, SM and SSM
		"jmesPath nested, SM and SSM": {params: awsIn("- objectName: TestSecret1\n  objectType: secretsmanager\n  jmesPath:\n    - {path: dbUser.username, objectAlias: username}\n    - {path: dbUser.password, objectAlias: password}\n- objectName: TestParm1\n  objectType: ssmparameter\n  jmesPath:\n    - {path: dbUser.username, objectAlias: ssmUsername}\n    - {path: dbUser.password, objectAlias: ssmPassword}\n"),
			files: []FileSpec{f("TestParm1", 0), f("TestSecret1", 0), f("password", 0), f("ssmPassword", 0), f("ssmUsername", 0), f("username", 0)}},
		// server/server_test.go "Mount Json Success-specify ARN": the ARN's region is checked against the
		// environment's region at the fetch when the class sets none
		"jmesPath on an ARN, no region": {params: map[string]string{"objects": "- {objectName: 'arn:aws:secretsmanager:fakeRegion:123456789012:secret:geheimnis-ABc123', objectAlias: TestSecret1, jmesPath: [{path: dbUser.username, objectAlias: username}]}"},
			files: []FileSpec{f("TestSecret1", 0), f("username", 0)}},
		// provider/secret_value.go: go-jmespath accepts a quoted key (keys with '-')
		"jmesPath quoted key": {params: awsIn(awsSM("db", `jmesPath: [{path: '"pass-word"', objectAlias: pw}]`)), files: []FileSpec{f("db", 0), f("pw", 0)}},
		// provider/secret_descriptor.go GetFileName: jmesPath aliases are translated like object names
		"jmesPath alias translated": {params: awsIn(awsSM("db", "jmesPath: [{path: user, objectAlias: app/user}]")), files: []FileSpec{f("app_user", 0), f("db", 0)}},
		// secrets-store-csi-driver atomic_writer.go validatePath: a jmesPath alias escaping the volume fails the mount
		// (upstream checks ".." on objectName/objectAlias only); refused at admission
		"jmesPath alias escaping": {params: awsIn(awsSM("db", "jmesPath: [{path: user, objectAlias: ../x}]"), "pathTranslation", "False"), deny: "parameters.objects[0].jmesPath[0].objectAlias"},
		// provider/secret_descriptor_test.go TestNewDescriptorList
		"descriptor list": {params: awsIn("\n          - objectName: secret1\n            objectType: secretsmanager\n          - objectName: secret2\n            objectType: ssmparameter\n          - objectName: secret3\n            objectType: ssmparameter\n            objectAlias: myParm", "pathTranslation", "_"),
			files: []FileSpec{f("myParm", 0), f("secret1", 0), f("secret2", 0)}},
		// provider/secret_descriptor_test.go TestNilDescriptorEntry
		"nil entry": {params: awsIn("\n          - objectName: secret1\n            objectType: secretsmanager\n          -\n          - objectName: secret2\n            objectType: ssmparameter"), deny: "parameters.objects[1]"},
		// provider/secret_descriptor_test.go TestBadYaml
		"bad yaml": {params: awsIn("\n          - objectName: secret1\n            objectType: secretsmanager\n          - {"), deny: "parameters.objects"},
		// provider/secret_descriptor.go NewSecretDescriptorList: a mapping does not decode into the list
		"objects is a mapping": {params: awsIn("objectName: x"), deny: "parameters.objects"},
		// provider/secret_descriptor.go NewSecretDescriptorList: an empty string decodes to no objects and the
		// mount succeeds with no files; admitted with a warning
		"objects missing": {params: map[string]string{"region": "us-west-2"}, warn: []string{"parameters.objects", "no files"}},
		// same, blank
		"objects blank": {params: awsIn("  \n"), warn: []string{"parameters.objects"}},
		// same, YAML null
		"objects null": {params: awsIn("null"), warn: []string{"parameters.objects"}},
		// same, an explicit empty list: no warning
		"objects empty list": {params: awsIn("[]")},
		// server/server_test.go "Multi Region Secrets Manager Backup Arn Success": the unknown key backupArn is ignored
		"unknown object field": {params: map[string]string{"failoverRegion": "fakeBackupRegion", "objects": "- {objectName: 'arn:aws:secretsmanager:fakeRegion:123456789012:secret:geheimnis-ABc123', backupArn: 'arn:aws:secretsmanager:fakeBackupRegion:123456789012:secret:backupArn-12345', objectType: secretsmanager, objectAlias: TestSecret1}"},
			files: []FileSpec{f("TestSecret1", 0)}},
		// server/server.go Mount: only the known attributes are read; others are ignored
		"unknown parameter": {params: awsIn(awsSM("s", ""), "someFutureKnob", "x"), files: []FileSpec{f("s", 0)}},
		// provider/secret_descriptor_test.go TestBadTrans; server/server_test.go "Fail pathTranslation"
		"pathTranslation two characters": {params: awsIn(awsSM("s", ""), "pathTranslation", "--"), deny: "parameters.pathTranslation"},
		// provider/secret_descriptor.go NewSecretDescriptorList: len(translate) counts bytes, so "é" is refused
		"pathTranslation multi-byte": {params: awsIn(awsSM("a/b", ""), "pathTranslation", "é"), deny: "parameters.pathTranslation"},
		// server/server_test.go "Success With Slash": default "_"
		"pathTranslation default": {params: awsIn(awsSM("mypath/TestSecret1", "") + "\n- {objectName: mypath/TestParm1, objectType: ssmparameter}"),
			files: []FileSpec{f("mypath_TestParm1", 0), f("mypath_TestSecret1", 0)}},
		// server/server_test.go "Slash to dash"
		"pathTranslation dash": {params: awsIn(awsSM("mypath/TestSecret1", "")+"\n- {objectName: mypath/TestParm1, objectType: ssmparameter}", "pathTranslation", "-"),
			files: []FileSpec{f("mypath-TestParm1", 0), f("mypath-TestSecret1", 0)}},
		// provider/secret_descriptor.go NewSecretDescriptorList: "false" compared lower-cased
		"pathTranslation FALSE": {params: awsIn(awsSM("a/b", ""), "pathTranslation", "FALSE"), files: []FileSpec{f("a/b", 0)}},
		// same: strings.ToLower, not Unicode folding: "falſe" (long s) is 5 characters, refused
		"pathTranslation long-s false": {params: awsIn(awsSM("a/b", ""), "pathTranslation", "falſe"), deny: "parameters.pathTranslation"},
		// server/server_test.go "Leading Slash OK"
		"leading slash dropped": {params: awsIn(awsSM("/TestSecret1", "")+"\n- {objectName: /TestParm1, objectType: ssmparameter}", "pathTranslation", "False"),
			files: []FileSpec{f("TestParm1", 0), f("TestSecret1", 0)}},
		// server/server_test.go "Full path OK" (driver writes the files; nested paths)
		"full path kept": {params: awsIn(awsSM("/mypath/TestSecret1", "")+"\n- {objectName: /mypath/TestParm1, objectType: ssmparameter}", "pathTranslation", "False"),
			files: []FileSpec{f("mypath/TestParm1", 0), f("mypath/TestSecret1", 0)}},
		// secrets-store-csi-driver atomic_writer.go writePayloadToDir: a file cannot be a directory of another
		"file under a file": {params: awsIn(awsSM("a", "")+"\n"+awsSM("a/b", ""), "pathTranslation", "False"), deny: "parameters.objects[1].objectName"},
		// provider/secret_descriptor_test.go TestTraversal (nine classes)
		"traversal ARN /../":         {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:/../pathTest-abc123'", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal ARN mypath/../..": {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:mypath/../../pathTest-abc123'", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal ARN mypath/..":    {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:mypath/..'", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SM ../mypath":     {params: awsIn(awsSM("'../mypath'", ""), "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SM mypath/../..":  {params: awsIn(awsSM("'mypath/../../param'", ""), "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SM mypath/..":     {params: awsIn(awsSM("'mypath/..'", ""), "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SSM ../mypath":    {params: awsIn("- {objectName: '../mypath', objectType: ssmparameter}", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SSM mypath/../..": {params: awsIn("- {objectName: 'mypath/../../param', objectType: ssmparameter}", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		"traversal SSM mypath/..":    {params: awsIn("- {objectName: 'mypath/..', objectType: ssmparameter}", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		// server/server_test.go "Fail Write Secret"
		"traversal ./../": {params: awsIn(awsSM("'./../TestSecret1'", ""), "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		// server/server_test.go "Fail Write Param"
		"traversal alias": {params: awsIn(awsSM("x", "objectAlias: ../../etc/passwd"), "pathTranslation", "False"), deny: "parameters.objects[0].objectAlias"},
		// provider/secret_descriptor_test.go TestNotTraversal (nested under the ARN's "secret:" directory, driver-written)
		"not traversal ARN /..x": {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:/..pathTest-abc123'", "pathTranslation", "False"),
			files: []FileSpec{f("arn:aws:secretsmanager:us-west-2:123456789012:secret:/..pathTest-abc123", 0)}},
		// same
		"not traversal ARN ..x": {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:..pathTest-abc123'", "pathTranslation", "False"),
			files: []FileSpec{f("arn:aws:secretsmanager:us-west-2:123456789012:secret:..pathTest-abc123", 0)}},
		// same
		"not traversal mypath../param": {params: awsIn("- {objectName: 'mypath../param', objectType: ssmparameter}", "pathTranslation", "False"), files: []FileSpec{f("mypath../param", 0)}},
		// same
		"not traversal mypath..": {params: awsIn("- {objectName: 'mypath..', objectType: ssmparameter}", "pathTranslation", "False"), files: []FileSpec{f("mypath..", 0)}},
		// provider/secret_descriptor_test.go TestNotTraversal "/..mypath", "..mypath": upstream writes a top-level
		// "..mypath"; refused here, as the writer's own entries ("..data") use that prefix (docs/providers/aws.md)
		"top-level ..name refused": {params: awsIn("- {objectName: '/..mypath', objectType: ssmparameter}", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		// same
		"top-level ..name refused (no slash)": {params: awsIn("- {objectName: '..mypath', objectType: ssmparameter}", "pathTranslation", "False"), deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestFallbackObjectRequiresAlias
		"failover needs alias": {params: awsIn("- objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1'\n  failoverObject:\n    objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:secret1'", awsTwoRegions...),
			deny: "parameters.objects[0].objectAlias"},
		// provider/secret_descriptor_test.go TestFallbackNonARNStillNeedsObjectType: the failover name is checked
		// against the objectType as written (none), not the type the primary ARN implies
		"failover name needs objectType": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: MySecret}, objectAlias: test}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectName"},
		// provider/secret_descriptor_test.go TestBackupArnMustBePairedWithObjectType
		"primary name needs objectType": {params: awsIn("- {objectName: MySecret, objectAlias: test, failoverObject: {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1'}}", "region", "us-west-2", "failoverRegion", "us-west-1"),
			deny: "parameters.objects[0].objectType"},
		// provider/secret_descriptor_test.go TestBackupArnDoesNotMatchType
		"failover ARN does not match objectType": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:bad:us-west-2:123456789012:secret:secret1'}, objectType: secretsmanager, objectAlias: test}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectName"},
		// provider/secret_descriptor_test.go TestBackupArnInvalidType
		"failover ARN invalid service": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:bad:us-west-2:123456789012:secret:secret1'}, objectAlias: test}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectName"},
		// provider/secret_descriptor.go validateObjectName without objectType does not compare the two ARNs'
		// services; upstream then asks Secrets Manager for an SSM ARN. Refused here (docs/providers/aws.md)
		"failover ARN of the other service": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:ssm:us-west-2:123456789012:parameter/p'}, objectAlias: test}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectName"},
		// provider/secret_descriptor_test.go TestBackupArnSuccess
		"failover ARNs": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:secret1'}, objectAlias: test}", awsTwoRegions...),
			files: []FileSpec{f("test", 0)}},
		// provider/secret_descriptor_test.go TestPrimaryArnRequiresRegionMatch
		"primary ARN region mismatch": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', objectAlias: test}"), deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestBackupArnRequiresRegionMatch
		"failover ARN region mismatch": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:secret1'}, objectAlias: test}", "region", "us-west-1", "failoverRegion", "us-east-2"),
			deny: "parameters.objects[0].failoverObject.objectName"},
		// provider/secret_descriptor.go validateObjectName: an ARN without a region never equals the region
		"ARN without region": {params: awsIn("- objectName: 'arn:aws:secretsmanager::123456789012:secret:s'"), deny: "parameters.objects[0].objectName"},
		// same, when the class sets no region (upstream compares with the node's region, never empty)
		"ARN without region, no class region": {params: map[string]string{"objects": "- objectName: 'arn:aws:ssm::123456789012:parameter/p'"}, deny: "parameters.objects[0].objectName"},
		// provider/secret_descriptor_test.go TestFallbackDataRequiresMultipleRegions
		"failover without failoverRegion": {params: awsIn("- {objectName: 'arn:aws:secretsmanager:us-west-1:123456789012:secret:secret1', failoverObject: {objectName: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:secret1'}, objectAlias: test}", "region", "us-west-1"),
			deny: "parameters.objects[0].failoverObject"},
		// provider/secret_descriptor_test.go TestObjectVersionAndLabelAreIncompatible
		"failover ssm version and label": {params: awsIn("- {objectName: MySecret1, objectType: ssmparameter, objectAlias: test, failoverObject: {objectName: MySecretInAnotherRegion, objectVersion: VersionId, objectVersionLabel: MyLabel}}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectVersionLabel"},
		// provider/secret_descriptor_test.go TestGetPathForMultiregion
		"failover file is the alias": {params: awsIn("- {objectName: MySecret1, objectType: ssmparameter, objectAlias: test, failoverObject: {objectName: MySecretInAnotherRegion}}", awsTwoRegions...),
			files: []FileSpec{f("test", 0)}},
		// provider/secret_descriptor_test.go TestVersionIdsMustMatch
		"failover versions differ": {params: awsIn("- {objectName: MySecret1, objectType: ssmparameter, objectVersion: OldVersionId, objectAlias: test, failoverObject: {objectName: MySecretInAnotherRegion, objectVersion: ADifferentVersionId}}", awsTwoRegions...),
			deny: "parameters.objects[0].failoverObject.objectVersion"},
		// provider/secret_descriptor_test.go TestVersionidsMatch
		"failover versions match": {params: awsIn("- {objectName: MySecret1, objectType: ssmparameter, objectVersion: VersionId, objectAlias: test, failoverObject: {objectName: MySecretInAnotherRegion, objectVersion: VersionId}}", awsTwoRegions...),
			files: []FileSpec{f("test", 0)}},
		// provider/secret_descriptor.go validateSecretDescriptor: a failoverObject without objectName is ignored
		"failoverObject without name ignored": {params: awsIn(awsSM("s", "failoverObject: {objectVersionLabel: x}")), files: []FileSpec{f("s", 0)}},
		// server/server_test.go "Region Equals FallbackRegion Fail"
		"failoverRegion equals region": {params: map[string]string{"region": "fakeRegion", "failoverRegion": "fakeRegion", "objects": awsSM("TestSecret1", "")}, deny: "parameters.failoverRegion"},
		// server/server_test.go "Multi Region Success": failoverRegion without region (the node's region is the primary)
		"failoverRegion without region": {params: map[string]string{"failoverRegion": "fakeBackupRegion", "objects": awsSM("TestSecret1", "") + "\n- {objectName: TestParm1, objectType: ssmparameter}"},
			files: []FileSpec{f("TestParm1", 0), f("TestSecret1", 0)}},
		// server/server.go getAwsRegions: the region is used as written; a padded one names no endpoint and
		// matches no ARN, so every upstream mount fails: refused
		"padded region": {params: awsIn(awsSM("s", ""), "region", "us-west-2 "), deny: "parameters.region"},
		// same, failoverRegion
		"padded failoverRegion": {params: awsIn(awsSM("s", ""), "failoverRegion", " us-east-1"), deny: "parameters.failoverRegion"},
		// server/server_test.go "Mount File Permission"
		"filePermission 0600": {params: awsIn(awsSM("TestSecret1", "filePermission: '0600'")), files: []FileSpec{f("TestSecret1", 0o600)}},
		// server/server_test.go "Mount File Permission Failure"
		"filePermission 0900": {params: awsIn(awsSM("TestSecret1", "filePermission: '0900'")), deny: "parameters.objects[0].filePermission"},
		// server/server_test.go "Mount JMES File Permission": a jmesPath entry inherits or overrides the object's
		"filePermission jmesPath override and inherit": {params: awsIn("- objectName: TestSecret1\n  objectType: secretsmanager\n  filePermission: '0600'\n  jmesPath:\n    - {path: dbUser.username, objectAlias: username, filePermission: '0777'}\n    - {path: dbUser.password, objectAlias: password}\n"),
			files: []FileSpec{f("TestSecret1", 0o600), f("password", 0o600), f("username", 0o777)}},
		// server/server_test.go "Mount JMES File Permission Failure"
		"filePermission jmesPath a987": {params: awsIn(awsSM("TestSecret1", "filePermission: '0600', jmesPath: [{path: dbUser.username, objectAlias: username, filePermission: a987}]")),
			deny: "parameters.objects[0].jmesPath[0].filePermission"},
		// provider/secret_descriptor_test.go TestValidateFilePermission "ShortFilePermission"
		"filePermission 000": {params: awsIn(awsSM("s", "filePermission: '000'")), deny: "parameters.objects[0].filePermission"},
		// provider/secret_descriptor_test.go TestValidateFilePermission "LongFilePermission"
		"filePermission 00000": {params: awsIn(awsSM("s", "filePermission: '00000'")), deny: "parameters.objects[0].filePermission"},
		// provider/secret_descriptor_test.go TestValidateFilePermission "InvalidFilePermission"
		"filePermission abc9": {params: awsIn(awsSM("s", "filePermission: abc9")), deny: "parameters.objects[0].filePermission"},
		// provider/secret_descriptor_test.go TestValidateDescriptorFilePermission "DescriptorValidPermission"
		"filePermission object and jmesPath": {params: awsIn("- {objectName: foo, objectType: secretsmanager, filePermission: '0600', jmesPath: [{path: bar, objectAlias: foobar, filePermission: '0700'}]}"),
			files: []FileSpec{f("foo", 0o600), f("foobar", 0o700)}},
		// provider/secret_descriptor_test.go TestValidateDescriptorFilePermission "DescriptorInvalidPermission"
		"filePermission abcd": {params: awsIn("- {objectName: foo, objectType: secretsmanager, filePermission: abcd, jmesPath: [{path: bar, objectAlias: foobar}]}"), deny: "parameters.objects[0].filePermission"},
		// provider/secret_descriptor_test.go TestValidateDescriptorFilePermission "DescriptorInvalidjmesPermission"
		"filePermission jmesPath efgh": {params: awsIn("- {objectName: foo, objectType: secretsmanager, jmesPath: [{path: bar, objectAlias: foobar, filePermission: efgh}]}"), deny: "parameters.objects[0].jmesPath[0].filePermission"},
		// provider/secret_descriptor_test.go TestGetJmesEntrySecretDescriptor "EmptyFilePermission"; TestGetFilePermission "DefaultFilePermission"
		"filePermission default": {params: awsIn(awsSM("foo", "jmesPath: [{path: bar, objectAlias: foobar}]")), files: []FileSpec{f("foo", 0), f("foobar", 0)}},
		// sigs.k8s.io/yaml: an unquoted 0600 is the YAML 1.1 number 384, which fails upstream's pattern
		"filePermission unquoted": {params: awsIn(awsSM("s", "filePermission: 0600")), deny: "parameters.objects[0].filePermission"},
		// provider/secret_descriptor.go validFilePermissionRE ^[0-7]{4}$ admits "1777"; GetFilePermission
		// (strconv.ParseInt base 8) and the writer keep the permission bits: 0777, with a warning
		"filePermission 1777": {params: awsIn(awsSM("s", "filePermission: '1777'")), warn: []string{"parameters.objects[0].filePermission", "01777", "0777"}, files: []FileSpec{f("s", 0o777)}},
		// same, setuid on a jmesPath entry
		"filePermission jmesPath 4755": {params: awsIn(awsSM("s", "jmesPath: [{path: a, objectAlias: a, filePermission: '4755'}]")),
			warn: []string{"parameters.objects[0].jmesPath[0].filePermission"}, files: []FileSpec{f("a", 0o755), f("s", 0)}},
		// same, "0000": upstream writes the file 0000; so is it here, with a warning
		"filePermission 0000": {params: awsIn(awsSM("s", "filePermission: '0000'")), warn: []string{"parameters.objects[0].filePermission", "written with mode 0000"}, files: []FileSpec{f0("s")}},
		// same, "1000" keeps no permission bit
		"filePermission 1000": {params: awsIn(awsSM("s", "filePermission: '1000'")), warn: []string{"parameters.objects[0].filePermission", "no permission bits"}, files: []FileSpec{f0("s")}},
		// server/server_test.go "New Mount Success with usePodIdentity provided"
		"usePodIdentity false": {params: awsIn(awsSM("TestSecret1", "")+"\n- {objectName: TestParm1, objectType: ssmparameter}", "usePodIdentity", "false"),
			files: []FileSpec{f("TestParm1", 0), f("TestSecret1", 0)}},
		// server/server.go Mount: strconv.ParseBool accepts "1", "T", "TRUE", "True"
		"usePodIdentity True": {params: awsIn(awsSM("s", ""), "usePodIdentity", "True"), files: []FileSpec{f("s", 0)}},
		// server/server_test.go "Fail Pod Identity Session" ("yes")
		"usePodIdentity yes": {params: awsIn(awsSM("s", ""), "usePodIdentity", "yes"), deny: "parameters.usePodIdentity"},
		// server/server.go Mount: strconv.ParseBool on the value as written
		"usePodIdentity padded": {params: awsIn(awsSM("s", ""), "usePodIdentity", " true"), deny: "parameters.usePodIdentity"},
		// credential_provider/pod_identity_credential_provider_test.go TestParseAddressPreference "IPv6 uppercase"
		"preferredAddressType IPv6": {params: awsIn(awsSM("s", ""), "usePodIdentity", "true", "preferredAddressType", "IPv6"), files: []FileSpec{f("s", 0)}},
		// same, "Auto preference"
		"preferredAddressType auto": {params: awsIn(awsSM("s", ""), "usePodIdentity", "true", "preferredAddressType", "auto"), files: []FileSpec{f("s", 0)}},
		// same, "Invalid preference": auto, with a warning
		"preferredAddressType invalid": {params: awsIn(awsSM("s", ""), "usePodIdentity", "true", "preferredAddressType", "invalid"),
			warn: []string{"parameters.preferredAddressType", `"invalid"`, "auto"}, files: []FileSpec{f("s", 0)}},
		// credential_provider/pod_identity_credential_provider.go parseAddressPreference: no trimming, " ipv4" is auto
		"preferredAddressType padded": {params: awsIn(awsSM("s", ""), "usePodIdentity", "true", "preferredAddressType", " ipv4"),
			warn: []string{"parameters.preferredAddressType"}, files: []FileSpec{f("s", 0)}},
		// provider/secret_descriptor.go validateObjectName: typeMap["sts"] is the zero type (SSM), so with
		// objectType ssmparameter upstream admits an STS ARN and SSM refuses it at the mount; refused here
		"unknown ARN service with objectType ssmparameter": {params: awsIn("- {objectName: 'arn:aws:sts:us-west-2:123456789012:parameter/x', objectType: ssmparameter}"), deny: "parameters.objects[0].objectName"},
		// same: arn.Parse checks the section count only; an empty partition is refused here
		"ARN with empty partition": {params: awsIn("- objectName: 'arn::secretsmanager:us-west-2:123456789012:secret:x'"), deny: "parameters.objects[0].objectName"},
		// secrets-store-csi-driver atomic_writer.go validatePath accepts a backslash; refused here as for every provider
		"jmesPath alias with a backslash": {params: awsIn(awsSM("db", `jmesPath: [{path: user, objectAlias: 'a\b'}]`)), deny: "parameters.objects[0].jmesPath[0].objectAlias"},
		// examples/ExampleSecretProviderClass-IRSA.yaml
		"example IRSA": {params: map[string]string{"objects": "    - objectName: \"MySecret\"\n      objectType: \"secretsmanager\"\n"}, files: []FileSpec{f("MySecret", 0)}},
		// examples/ExampleSecretProviderClass-PodIdentity.yaml
		"example Pod Identity": {params: map[string]string{"usePodIdentity": "true", "objects": "- objectName: \"MySecret\"\n  objectType: \"secretsmanager\"\n"}, files: []FileSpec{f("MySecret", 0)}},
		// tests/BasicTestMountSPC.yaml (REGION us-west-2, FAILOVERREGION us-east-1): capitalised jmesPath keys
		// (Path, ObjectAlias) decode, as encoding/json under sigs.k8s.io/yaml matches keys case-insensitively
		"integration test class": {params: map[string]string{"region": "us-west-2", "failoverRegion": "us-east-1", "objects": awsIntegClass},
			files: []FileSpec{f("ParameterStoreRotationTest", 0), f("ParameterStoreTest1", 0), f("ParameterStoreTest2", 0), f("SecretsManagerRotationTest", 0), f("SecretsManagerSync", 0),
				f("SecretsManagerTest1", 0), f("SecretsManagerTest2", 0), f("jsonSsm", 0), f("secretsManagerJson", 0), f("secretsManagerPassword", 0), f("secretsManagerUsername", 0),
				f("ssmPassword", 0), f("ssmUsername", 0)}},
		// same decoder: object keys in another case
		"keys in another case": {params: awsIn("- {OBJECTNAME: s, objecttype: secretsmanager, ObjectAlias: a}"), files: []FileSpec{f("a", 0)}},
		// same decoder: YAML is a superset of JSON
		"objects as JSON": {params: awsIn(`[{"objectName": "s", "objectType": "secretsmanager", "filePermission": "0640"}]`), files: []FileSpec{f("s", 0o640)}},
		// provider/secret_descriptor.go GetFileName: any one-byte character replaces "/"
		"pathTranslation dot": {params: awsIn(awsSM("app/db", ""), "pathTranslation", "."), files: []FileSpec{f("app.db", 0)}},
		// same, "/" for "/" keeps nested names (and a leading "/", which the writer refuses)
		"pathTranslation slash": {params: awsIn(awsSM("app/db", ""), "pathTranslation", "/"), files: []FileSpec{f("app/db", 0)}},
		// same; then secrets-store-csi-driver atomic_writer.go validatePath "must be relative path"
		"pathTranslation slash, leading slash": {params: awsIn(awsSM("/app/db", ""), "pathTranslation", "/"), deny: "parameters.objects[0].objectName"},
		// server/server.go Mount: strconv.ParseBool "1"
		"usePodIdentity 1": {params: awsIn(awsSM("s", ""), "usePodIdentity", "1"), files: []FileSpec{f("s", 0)}},
		// provider/parameter_store_provider.go fetchParameterStoreBatch: a name with ':' is sent as a selector and
		// the answer matches no descriptor (nil dereference); refused here (docs/providers/aws.md)
		"ssm name with selector": {params: awsIn("- {objectName: 'p:3', objectType: ssmparameter}"), deny: "parameters.objects[0].objectName"},
		// server/server_test.go "Multi Region Failover Descriptor Batch Success"
		"failover batch": {params: map[string]string{"failoverRegion": "fakeBackupRegion", "objects": awsSM("TestSecret1", "") + "\n" + awsSM("BinarySecret1", "") +
			"\n- {objectName: TestParm13, objectType: ssmparameter}\n- {objectName: TestParm15, objectType: ssmparameter, objectVersion: VersionId, objectAlias: TestParm15Alias, failoverObject: {objectName: TestParm15AnotherRegion, objectVersion: VersionId}}"},
			files: []FileSpec{f("BinarySecret1", 0), f("TestParm13", 0), f("TestParm15Alias", 0), f("TestSecret1", 0)}},
	})
}

// TestConformanceAWSDenialsNameTheCause: a denial names the class, the
// provider and what is wrong, not only the field.
func TestConformanceAWSDenialsNameTheCause(t *testing.T) {
	for params, cause := range map[string]string{
		"- {objectName: 'arn:aws:secretsmanager::1:secret:s'}":                                     "has no region",
		"- {objectName: x, objectType: secretsmanager, jmesPath: [{path: 'a.[', objectAlias: y}]}": "invalid JMES path",
		"- {objectName: x}": "is required when objectName",
	} {
		_, err := ParseSpec("ns", "c", ProviderAWS, map[string]string{"region": "us-east-1", "objects": params})
		if err == nil || !strings.Contains(err.Error(), "SecretProviderClass ns/c (provider aws)") || !strings.Contains(err.Error(), cause) {
			t.Errorf("%s: error %v, want the class and %q", params, err, cause)
		}
	}
	_, err := ParseSpec("ns", "c", ProviderAWS, map[string]string{"pathTranslation": "é", "objects": "[]"})
	if err == nil || !strings.Contains(err.Error(), "2 bytes") {
		t.Errorf("multi-byte pathTranslation: %v, want the byte count", err)
	}
}
