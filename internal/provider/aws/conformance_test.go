package aws_test

import (
	"io/fs"
	"sort"
	"testing"

	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
)

// Backend content of the fetch-level conformance cases, after the mocks of
// the upstream provider's server/server_test.go.
const (
	confJSON    = `{"dbUser": {"username": "SecretsManagerUser", "password": "SecretsManagerPassword"}}`
	confSSMJSON = `{"dbUser": {"username": "ParameterStoreUser", "password" : "ParameterStorePassword"}}`
	confPrimary = "us-west-2"
	confBackup  = "us-east-1"
)

// confFixture fills the fake with the objects every case may read.
func confFixture(f *fakeAWS) {
	r := confPrimary
	f.putSecret(r, "TestSecret1", ptr(confJSON), nil)
	f.putSecret(r, "BinarySecret1", nil, []byte("Binary\x00Secret\xff"))
	f.putSecret(r, "mypath/TestSecret1", ptr("secret1"), nil)
	f.putSecret(r, "/mypath/TestSecret1", ptr("secret1-full"), nil)
	f.putSecret(r, "user", ptr("plain-user"), nil)
	f.putSecret(r, "db", ptr("db-1"), nil)
	f.putSecret(r, "db", ptr("db-2"), nil, "custom")
	f.putSecret(r, "db", ptr("db-3"), nil)
	f.putSecret(r, "hyphen", ptr(`{"pass-word": "p-w", "n": {"k": "nested"}}`), nil)
	f.putParam(r, "TestParm1", "String", confSSMJSON)
	f.putParam(r, "mypath/TestParm1", "String", "parm1")
	f.putParam(r, "/mypath/TestParm1", "SecureString", "parm1-full")
	f.putParam(r, "/app/p", "String", "p-1")
	f.putParam(r, "/app/p", "String", "p-2")
	f.putParam(r, "/app/p", "String", "p-3")
	f.labelParam(r, "/app/p", "stable", 1)
	f.putParam(r, "TestParm15", "String", "parm15-primary")
	f.putSecret(confBackup, "TestSecret1", ptr("backup-secret1"), nil)
	f.putParam(confBackup, "TestParm13", "String", "parm13")
	f.putParam(confBackup, "TestParm15AnotherRegion", "String", "parm15")
}

// TestConformanceAWSContents fetches classes drawn from the upstream AWS
// provider (github.com/aws/secrets-store-csi-driver-provider-aws; files
// named below are in that repository) through the real SDK clients against
// the fake, and checks the whole set of files written: names, modes and
// contents, after the last-writer-wins rule of the driver's writer.
func TestConformanceAWSContents(t *testing.T) {
	type want struct {
		mode fs.FileMode
		data string
	}
	secret1ARN := func(f *fakeAWS) string { return f.findSecret(confPrimary, "TestSecret1").arn }
	tests := map[string]struct {
		objects string
		params  map[string]string
		// objectsFor builds the objects from the fake (ARNs); it wins over objects.
		objectsFor func(f *fakeAWS) string
		// noRegion leaves region out of the class; AWS_REGION names it.
		noRegion bool
		// primaryDown answers every call in the primary region with 503.
		primaryDown bool
		files       map[string]want
	}{
		// server/server_test.go "New Mount Success"
		"new mount": {objects: "- {objectName: TestSecret1, objectType: secretsmanager}\n- {objectName: mypath/TestParm1, objectType: ssmparameter, objectAlias: TestParm1}",
			files: map[string]want{"TestSecret1": {0o644, confJSON}, "TestParm1": {0o644, "parm1"}}},
		// server/server_test.go "Mount File Permission"
		"file permission": {objects: "- {objectName: TestSecret1, objectType: secretsmanager, filePermission: '0600'}",
			files: map[string]want{"TestSecret1": {0o600, confJSON}}},
		// server/server_test.go "Mount JMES File Permission"
		"jmesPath file permission": {objects: "- objectName: TestSecret1\n  objectType: secretsmanager\n  filePermission: '0600'\n  jmesPath:\n    - {path: dbUser.username, objectAlias: username, filePermission: '0777'}\n    - {path: dbUser.password, objectAlias: password}\n",
			files: map[string]want{"TestSecret1": {0o600, confJSON}, "username": {0o777, "SecretsManagerUser"}, "password": {0o600, "SecretsManagerPassword"}}},
		// server/server_test.go "Mount Json Success": nested jmesPath on a secret and on a parameter
		"jmesPath SM and SSM": {objects: "- objectName: TestSecret1\n  objectType: secretsmanager\n  jmesPath:\n    - {path: dbUser.username, objectAlias: username}\n    - {path: dbUser.password, objectAlias: password}\n- objectName: TestParm1\n  objectType: ssmparameter\n  jmesPath:\n    - {path: dbUser.username, objectAlias: ssmUsername}\n    - {path: dbUser.password, objectAlias: ssmPassword}\n",
			files: map[string]want{"TestSecret1": {0o644, confJSON}, "TestParm1": {0o644, confSSMJSON}, "username": {0o644, "SecretsManagerUser"}, "password": {0o644, "SecretsManagerPassword"},
				"ssmUsername": {0o644, "ParameterStoreUser"}, "ssmPassword": {0o644, "ParameterStorePassword"}}},
		// server/server_test.go "Mount Json Success-specify ARN" (no region in the class: the environment's)
		"jmesPath on an ARN": {objectsFor: func(f *fakeAWS) string {
			return "- {objectName: '" + secret1ARN(f) + "', objectAlias: TestSecret1, jmesPath: [{path: dbUser.username, objectAlias: username}]}"
		}, noRegion: true,
			files: map[string]want{"TestSecret1": {0o644, confJSON}, "username": {0o644, "SecretsManagerUser"}}},
		// provider/secret_value.go getJsonSecrets: go-jmespath quoted keys and nested objects
		"jmesPath quoted key and nested": {objects: `- {objectName: hyphen, objectType: secretsmanager, jmesPath: [{path: '"pass-word"', objectAlias: pw}, {path: n.k, objectAlias: k}]}`,
			files: map[string]want{"hyphen": {0o644, `{"pass-word": "p-w", "n": {"k": "nested"}}`}, "pw": {0o644, "p-w"}, "k": {0o644, "nested"}}},
		// server/server_test.go "New Mount Binary Success": SecretBinary bytes as they are
		"binary secret": {objects: "- {objectName: BinarySecret1, objectType: secretsmanager}",
			files: map[string]want{"BinarySecret1": {0o644, "Binary\x00Secret\xff"}}},
		// server/server_test.go "Success With Slash"
		"slash to underscore": {objects: "- {objectName: mypath/TestSecret1, objectType: secretsmanager}\n- {objectName: mypath/TestParm1, objectType: ssmparameter}",
			files: map[string]want{"mypath_TestSecret1": {0o644, "secret1"}, "mypath_TestParm1": {0o644, "parm1"}}},
		// server/server_test.go "Slash to dash"
		"slash to dash": {objects: "- {objectName: mypath/TestSecret1, objectType: secretsmanager}\n- {objectName: mypath/TestParm1, objectType: ssmparameter}", params: map[string]string{"pathTranslation": "-"},
			files: map[string]want{"mypath-TestSecret1": {0o644, "secret1"}, "mypath-TestParm1": {0o644, "parm1"}}},
		// server/server_test.go "Full path OK" (and "Leading Slash OK"): pathTranslation False keeps nested paths
		"full path": {objects: "- {objectName: /mypath/TestSecret1, objectType: secretsmanager}\n- {objectName: /mypath/TestParm1, objectType: ssmparameter}", params: map[string]string{"pathTranslation": "False"},
			files: map[string]want{"mypath/TestSecret1": {0o644, "secret1-full"}, "mypath/TestParm1": {0o644, "parm1-full"}}},
		// server/server_test.go TestReMounts "Initial Mount Success": labels and pinned versions, SM and SSM
		"versions and labels": {objects: "- {objectName: db, objectType: secretsmanager}\n- {objectName: db, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS, objectAlias: prev}\n- {objectName: db, objectType: secretsmanager, objectVersionLabel: custom, objectAlias: custom}\n" +
			"- {objectName: /app/p, objectType: ssmparameter, objectVersionLabel: stable, objectAlias: p-stable}\n- {objectName: /app/p, objectType: ssmparameter, objectVersion: '2', objectAlias: p-v2}\n- {objectName: /app/p, objectType: ssmparameter}",
			files: map[string]want{"db": {0o644, "db-3"}, "prev": {0o644, "db-2"}, "custom": {0o644, "db-2"}, "p-stable": {0o644, "p-1"}, "p-v2": {0o644, "p-2"}, "_app_p": {0o644, "p-3"}}},
		// provider/secret_descriptor_test.go TestConflictingNameAndNotVersionLabelWoAlias: one file, the later entry wins
		"same secret, two labels, no alias": {objects: "- {objectName: db, objectType: secretsmanager, objectVersionLabel: AWSCURRENT}\n- {objectName: db, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS, filePermission: '0400'}",
			files: map[string]want{"db": {0o400, "db-2"}}},
		// same, SSM parameter: a label, then no selector
		"same parameter, two selectors, no alias": {objects: "- {objectName: /app/p, objectType: ssmparameter, objectVersionLabel: stable}\n- {objectName: /app/p, objectType: ssmparameter}",
			files: map[string]want{"_app_p": {0o644, "p-3"}}},
		// provider/secret_descriptor_test.go TestConflictingNameAndNotAliasWithVersionLabel on SSM: upstream's
		// batch maps both answers to the last alias (docs/providers/aws.md); here each alias gets its own value
		"same parameter, two selectors, two aliases": {objects: "- {objectName: /app/p, objectType: ssmparameter, objectVersionLabel: stable, objectAlias: a}\n- {objectName: /app/p, objectType: ssmparameter, objectVersion: '3', objectAlias: b}",
			files: map[string]want{"a": {0o644, "p-1"}, "b": {0o644, "p-3"}}},
		// provider/secret_descriptor.go NewSecretDescriptorList: a jmesPath alias equal to another object's name; the later file wins
		"jmesPath alias over an object name": {objects: "- {objectName: user, objectType: secretsmanager}\n- {objectName: TestSecret1, objectType: secretsmanager, jmesPath: [{path: dbUser.username, objectAlias: user, filePermission: '0440'}]}",
			files: map[string]want{"TestSecret1": {0o644, confJSON}, "user": {0o440, "SecretsManagerUser"}}},
		// same, the object after the jmesPath entry wins
		"object name over a jmesPath alias": {objects: "- {objectName: TestSecret1, objectType: secretsmanager, jmesPath: [{path: dbUser.username, objectAlias: user}]}\n- {objectName: user, objectType: secretsmanager}",
			files: map[string]want{"TestSecret1": {0o644, confJSON}, "user": {0o644, "plain-user"}}},
		// server/server.go Mount: upstream fetches the types in Go map order, so which of a parameter and a
		// secret writing one file wins varies; here the later one in the class: a secret after a parameter
		"secret after a parameter on one file": {objects: "- {objectName: mypath/TestParm1, objectType: ssmparameter, objectAlias: user}\n- {objectName: user, objectType: secretsmanager}",
			files: map[string]want{"user": {0o644, "plain-user"}}},
		// same, a parameter after a secret
		"parameter after a secret on one file": {objects: "- {objectName: user, objectType: secretsmanager}\n- {objectName: mypath/TestParm1, objectType: ssmparameter, objectAlias: user, filePermission: '0600'}",
			files: map[string]want{"user": {0o600, "parm1"}}},
		// provider/secret_descriptor.go validFilePermissionRE admits "1777"; the writer keeps 0777
		"filePermission 1777": {objects: "- {objectName: user, objectType: secretsmanager, filePermission: '1777'}",
			files: map[string]want{"user": {0o777, "plain-user"}}},
		// same, "0000" is written 0000, as upstream writes it
		"filePermission 0000": {objects: "- {objectName: user, objectType: secretsmanager, filePermission: '0000'}",
			files: map[string]want{"user": {0, "plain-user"}}},
		// provider/secret_descriptor_test.go TestGetSecretTypeSSM: an SSM ARN, translated
		"SSM ARN": {objects: "- objectName: arn:aws:ssm:us-west-2:123456789012:parameter/app/p",
			files: map[string]want{"arn:aws:ssm:us-west-2:123456789012:parameter_app_p": {0o644, "p-3"}}},
		// server/server_test.go "Multi Region Failover Descriptor Batch Success": the primary answers 5xx,
		// the failover region serves the failoverObject name (with its version) and the others
		"failover": {objects: "- {objectName: TestSecret1, objectType: secretsmanager}\n- {objectName: TestParm13, objectType: ssmparameter}\n- {objectName: TestParm15, objectType: ssmparameter, objectVersion: '1', objectAlias: TestParm15Alias, failoverObject: {objectName: TestParm15AnotherRegion, objectVersion: '1'}}",
			params: map[string]string{"failoverRegion": confBackup}, primaryDown: true,
			files: map[string]want{"TestSecret1": {0o644, "backup-secret1"}, "TestParm13": {0o644, "parm13"}, "TestParm15Alias": {0o644, "parm15"}}},
		// server/server_test.go "Multi Region Prefers Primary"
		"failover prefers primary": {objects: "- {objectName: TestSecret1, objectType: secretsmanager}\n- {objectName: TestParm15, objectType: ssmparameter, objectAlias: p15, failoverObject: {objectName: TestParm15AnotherRegion}}",
			params: map[string]string{"failoverRegion": confBackup},
			files:  map[string]want{"TestSecret1": {0o644, confJSON}, "p15": {0o644, "parm15-primary"}}},
		// provider/secret_descriptor.go NewSecretDescriptorList: no objects, an empty volume
		"no objects": {objects: "", files: map[string]want{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			useFake(t, f)
			confFixture(f)
			objects := tc.objects
			if tc.objectsFor != nil {
				objects = tc.objectsFor(f)
			}
			params := map[string]string{"region": confPrimary, "objects": objects}
			if tc.noRegion {
				delete(params, "region")
				t.Setenv("AWS_REGION", confPrimary)
			}
			for k, v := range tc.params {
				params[k] = v
			}
			if tc.primaryDown {
				f.do(func() { f.failRegions[confPrimary] = true })
			}
			fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: parseClass(t, params), id: testIdentity()}
			files := fe.mustCycle()
			var got, wantNames []string
			for p := range files {
				got = append(got, p)
			}
			for p, w := range tc.files {
				wantNames = append(wantNames, p)
				wantFile(t, files, p, w.data, w.mode)
			}
			sort.Strings(got)
			sort.Strings(wantNames)
			if len(got) != len(wantNames) {
				t.Errorf("files %q, want %q", got, wantNames)
			}
		})
	}
}

// TestConformanceAWSRotation follows the upstream remount cases: the
// second fetch passes the versions written by the first and sees labels
// move and new versions appear, as kubelet's rotation would.
func TestConformanceAWSRotation(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	const r = confPrimary
	f.putSecret(r, "TestSecret1", ptr("secret1 v1"), nil)
	f.putSecret(r, "TestSecret2", ptr("secret2 v1"), nil, "custom")
	v3 := f.putSecret(r, "TestSecret3", ptr("secret3 v1"), nil)
	f.putSecret(r, "TestSecretJSON", ptr(`{"username": "user v1"}`), nil)
	f.putParam(r, "TestParm1", "String", "parm1 v1")
	f.labelParam(r, "TestParm1", "current", 1)
	f.putParam(r, "TestParm2", "String", "parm2 v1")
	f.putParam(r, "TestParm3", "String", "parm3 v1")
	objects := "- {objectName: TestSecret1, objectType: secretsmanager}\n- {objectName: TestSecret2, objectType: secretsmanager, objectVersionLabel: custom}\n" +
		"- {objectName: TestSecret3, objectType: secretsmanager, objectVersion: '" + v3 + "'}\n- {objectName: TestSecretJSON, objectType: secretsmanager, jmesPath: [{path: username, objectAlias: username}]}\n" +
		"- {objectName: TestParm1, objectType: ssmparameter, objectVersionLabel: current}\n- {objectName: TestParm2, objectType: ssmparameter, objectVersion: '1'}\n- {objectName: TestParm3, objectType: ssmparameter}"
	fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: parseClass(t, map[string]string{"region": r, "objects": objects}), id: testIdentity()}
	// server/server_test.go TestReMounts "Initial Mount Success"
	files := fe.mustCycle()
	for p, d := range map[string]string{"TestSecret1": "secret1 v1", "TestSecret2": "secret2 v1", "TestSecret3": "secret3 v1", "TestSecretJSON": `{"username": "user v1"}`,
		"username": "user v1", "TestParm1": "parm1 v1", "TestParm2": "parm2 v1", "TestParm3": "parm3 v1"} {
		wantFile(t, files, p, d, 0o644)
	}
	// server/server_test.go TestReMounts "No Change Success": nothing is rewritten
	fe.mustCycle()
	if u := fe.unchanged(); len(u) != 8 {
		t.Errorf("unchanged after a quiet cycle: %v, want all 8", u)
	}
	// server/server_test.go TestReMounts "Rotation1 Success": new current versions; the pinned ones stay
	f.putSecret(r, "TestSecret1", ptr("secret1 v2"), nil)
	f.putSecret(r, "TestSecret3", ptr("secret3 v2"), nil)
	f.putSecret(r, "TestSecretJSON", ptr(`{"username": "user v2"}`), nil)
	f.putParam(r, "TestParm1", "String", "parm1 v2")
	f.putParam(r, "TestParm2", "String", "parm2 v2")
	f.putParam(r, "TestParm3", "String", "parm3 v2")
	files = fe.mustCycle()
	for p, d := range map[string]string{"TestSecret1": "secret1 v2", "TestSecret2": "secret2 v1", "TestSecret3": "secret3 v1", "username": "user v2",
		"TestParm1": "parm1 v1", "TestParm2": "parm2 v1", "TestParm3": "parm3 v2"} {
		wantFile(t, files, p, d, 0o644)
	}
	// server/server_test.go TestReMounts "Move Labels1 Success": the labels move to the new versions
	f.putSecret(r, "TestSecret2", ptr("secret2 v2"), nil, "custom")
	f.labelParam(r, "TestParm1", "current", 2)
	files = fe.mustCycle()
	wantFile(t, files, "TestSecret2", "secret2 v2", 0o644)
	wantFile(t, files, "TestParm1", "parm1 v2", 0o644)
	wantFile(t, files, "TestSecret3", "secret3 v1", 0o644)
	if len(files) != 8 {
		t.Errorf("%d files, want 8", len(files))
	}
}
