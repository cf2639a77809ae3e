package aws_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/internal/volume"
)

// Optional objects against a real moto_server, through volume.Refresh (the
// fetch-and-write step of the agent and the node shim): a Secrets Manager
// secret with a jmesPath file and an SSM parameter, both optional, missing
// at start (the refresh succeeds, their files are absent), created (their
// files appear), deleted — the secret with a recovery window, which AWS
// answers InvalidRequestException "marked for deletion", the parameter for
// good — (the files go; with on-delete: keep they stay). A required secret
// missing still fails the refresh naming class, object and cause, and
// leaves the files.
func TestMotoOptionalObjects(t *testing.T) {
	moto := testenv.StartMoto(t)
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", moto)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	const region = "us-east-1"
	admin := newMotoAdmin(t, moto, region)
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		onDelete string
		force    bool // delete the secret without a recovery window
	}{
		{name: "remove", onDelete: "remove"},
		{name: "keep", onDelete: "keep", force: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret, param := "opt-"+tc.name+"/db", "/opt-"+tc.name+"/flag"
			admin.createSecret(region, "opt-"+tc.name+"/present", aws.String("present-1"), nil)
			obj, err := spc.ParseAnnotated(testNamespace, testClass, "aws", map[string]string{"region": region, "objects": `
- objectName: opt-` + tc.name + `/present
  objectType: secretsmanager
  objectAlias: present
- objectName: ` + secret + `
  objectType: secretsmanager
  objectAlias: db
  jmesPath:
    - {path: user, objectAlias: db-user}
- objectName: ` + param + `
  objectType: ssmparameter
  objectAlias: flag
`}, map[string]string{spc.AnnotationOptionalObjects: secret + ", flag", spc.AnnotationOptionalOnDelete: tc.onDelete})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "vol")
			v := &volume.Volume{Class: obj, Dir: dir}
			p := newMotoProvider()
			refresh := func() volume.Result {
				t.Helper()
				res, err := v.Refresh(ctx, p, testIdentity())
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				return res
			}

			res := refresh()
			providertest.WantFiles(t, dir, map[string]string{"present": "present-1"}, "db", "db-user", "flag")
			if !slices.Equal(res.Missing, []string{"db", "flag"}) {
				t.Errorf("Missing = %v, want [db flag]", res.Missing)
			}

			admin.createSecret(region, secret, aws.String(`{"user":"admin","password":"pw"}`), nil)
			admin.putParam(region, param, "on", ssmtypes.ParameterTypeString)
			res = refresh()
			providertest.WantFiles(t, dir, map[string]string{"present": "present-1", "db": `{"user":"admin","password":"pw"}`, "db-user": "admin", "flag": "on"})
			if len(res.Missing) != 0 {
				t.Errorf("Missing = %v after the objects were created", res.Missing)
			}

			if _, err := admin.sm[region].DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(secret), ForceDeleteWithoutRecovery: aws.Bool(tc.force)}); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.ssm[region].DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(param)}); err != nil {
				t.Fatal(err)
			}
			for range 2 { // and it stays so
				res = refresh()
				if tc.onDelete == "keep" {
					providertest.WantFiles(t, dir, map[string]string{"present": "present-1", "db": `{"user":"admin","password":"pw"}`, "db-user": "admin", "flag": "on"})
				} else {
					providertest.WantFiles(t, dir, map[string]string{"present": "present-1"}, "db", "db-user", "flag")
				}
				if !slices.Equal(res.Missing, []string{"db", "flag"}) {
					t.Errorf("Missing = %v after the delete, want [db flag]", res.Missing)
				}
			}

			// Back again: the new value, whatever on-delete says.
			admin.putParam(region, param, "off", ssmtypes.ParameterTypeString)
			refresh()
			if got := providertest.ReadFile(t, dir, "flag"); got != "off" {
				t.Errorf("flag = %q after it was created again, want off", got)
			}
		})
	}

	t.Run("required missing", func(t *testing.T) {
		admin.createSecret(region, "opt-req/present", aws.String("present-1"), nil)
		c, err := spc.ParseAnnotated(testNamespace, testClass, "aws", map[string]string{"region": region, "objects": `
- {objectName: opt-req/present, objectType: secretsmanager, objectAlias: present}
- {objectName: opt-req/maybe, objectType: secretsmanager, objectAlias: maybe}
- {objectName: opt-req/required, objectType: secretsmanager, objectAlias: required}
`}, map[string]string{spc.AnnotationOptionalObjects: "maybe"})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "vol")
		v := &volume.Volume{Class: c, Dir: dir}
		_, err = v.Refresh(ctx, newMotoProvider(), testIdentity())
		if err == nil {
			t.Fatal("refresh succeeded with a required secret missing")
		}
		for _, w := range []string{"SecretProviderClass team-a/db-creds (provider aws)", `object "required"`, "NotFound", `"opt-req/required"`, "ResourceNotFoundException"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		if strings.Contains(err.Error(), `object "maybe"`) {
			t.Errorf("error %q blames the optional object", err)
		}
		if _, serr := os.Lstat(filepath.Join(dir, "present")); !errors.Is(serr, fs.ErrNotExist) {
			t.Errorf("a failed first refresh wrote files: %v", serr)
		}
	})
}
