package aws_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent/agenttest"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// agentObjects is the class the log-scan agent mounts: a JSON secret
// written whole and split by jmesPath, and a SecureString parameter.
const agentObjects = `
- objectName: prod/db
  objectType: secretsmanager
  objectAlias: db.json
  jmesPath:
    - path: username
      objectAlias: db-username
    - path: password
      objectAlias: db-password
- objectName: /app/api-key
  objectType: ssmparameter
  objectAlias: api-key
`

// TestAgentLogScan runs the real agent runtime (agent.Run in sidecar mode,
// as in a pod) with the aws provider against the in-process AWS fake,
// authenticating by IRSA: the projected token for sts.amazonaws.com is
// exchanged at the fake STS, which accepts it only after the test
// kube-apiserver's TokenReview, and every Secrets Manager and SSM call must
// be SigV4-signed with the credentials STS issued. The agent fetches,
// rotates changed values of both APIs, keeps the files through an access
// denial injected mid-run, recovers, and a second agent fails its first
// fetch on a missing secret. Everything the agent logged (at debug, as
// JSON), everything written to the process's standard error, the errors
// and the termination message must hold none of the values (nor the
// token or the credentials STS issued), and must show each of those
// phases.
func TestAgentLogScan(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	const role = "arn:aws:iam::123456789012:role/app-secrets"
	ns := env.Namespace(t, "aws-logscan", nil)
	env.ServiceAccount(t, ns, "app", map[string]string{"eks.amazonaws.com/role-arn": role})
	subject := "system:serviceaccount:" + ns + ":app"

	f := newFakeAWS(t)
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", f.URL())
	reviewer := &providertest.Reviewer{Clientset: env.Clientset}
	f.assume = func(ctx context.Context, token string) (string, error) {
		sub, err := reviewer.Review(ctx, token, identity.AudienceAWSIRSA)
		if err != nil {
			return "", err
		}
		if sub.Username != subject {
			return "", fmt.Errorf("role %s does not trust %s", role, sub.Username)
		}
		return sub.Username, nil
	}

	logs := logcheck.New()
	secret := logs.NewSecret
	dbJSON := func(user, pass string) string {
		v := fmt.Sprintf(`{"username":%q,"password":%q,"port":5432}`, user, pass)
		logs.Secret(v)
		return v
	}
	user, pass1, key1 := secret("db-user"), secret("db-pass"), secret("api-key")
	f.putSecret("us-east-1", "prod/db", ptr(dbJSON(user, pass1)), nil)
	f.putParam("us-east-1", "/app/api-key", "SecureString", key1)

	tok, err := env.Token(ctx, ns, "app", []string{identity.AudienceAWSIRSA}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := agenttest.TokenFile(t, logs, tok)
	// After the control plane started: its processes keep their own stderr.
	logs.CaptureStderr(t)

	pod := identity.Pod{Namespace: ns, Name: "app-0", UID: "uid-1", ServiceAccount: "app"}
	config := func(dir, objects string, firstTimeout time.Duration) *agentconfig.Config {
		return agenttest.SidecarConfig(dir, firstTimeout, agentconfig.Token{Audience: identity.AudienceAWSIRSA, Path: tokenFile}, identity.Cloud{AWSRoleARN: role}, agentconfig.Class{
			Namespace: ns, Name: "app-secrets", Provider: "aws",
			Parameters: map[string]string{"region": "us-east-1", "objects": objects},
		})
	}
	providers := func(*slog.Logger) provider.Set { return provider.NewSet(awsprov.New(testOptions())) }

	dir := filepath.Join(t.TempDir(), "secrets")
	a := agenttest.Start(t, agenttest.Options{Config: config(dir, agentObjects, 20*time.Second), NewProviders: providers, Pod: pod, Logs: logs})
	a.Eventually(20*time.Second, "readiness", a.Ready)
	for name, want := range map[string]string{"db.json": dbJSON(user, pass1), "db-username": user, "db-password": pass1, "api-key": key1} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s after the first fetch: %v (content differs from the backend: %t)", name, err, string(got) != want)
		}
	}
	if n := f.get(func() int { return f.calls["sts.AssumeRoleWithWebIdentity"] }); n < 1 {
		t.Fatalf("no AssumeRoleWithWebIdentity: the IRSA path was not taken")
	}
	if issued, static := issuedKeys(f); issued < 2 || static != 0 {
		t.Fatalf("calls signed with STS credentials: %d, with other keys: %d", issued, static)
	}
	a.WaitUnchangedRotation()

	// A new version of the secret and of the parameter.
	pass2, key2 := secret("db-pass"), secret("api-key")
	f.putSecret("us-east-1", "prod/db", ptr(dbJSON(user, pass2)), nil)
	f.putParam("us-east-1", "/app/api-key", "SecureString", key2)
	a.Eventually(10*time.Second, "the new password in db-password", agenttest.FileIs(filepath.Join(dir, "db-password"), pass2))
	a.Eventually(10*time.Second, "the new parameter in api-key", agenttest.FileIs(filepath.Join(dir, "api-key"), key2))
	if got, _ := os.ReadFile(filepath.Join(dir, "db.json")); string(got) != dbJSON(user, pass2) {
		t.Error("db.json does not hold the new version")
	}

	// Access to the secret is revoked mid-run: rotations fail, the files stay.
	a.RotationsFail(provider.ReasonAccessDenied, func() { f.do(func() { f.deny["prod/db"] = true }) })
	if got, _ := os.ReadFile(filepath.Join(dir, "db-password")); string(got) != pass2 {
		t.Error("db-password changed while access was denied")
	}
	if !a.Ready() {
		t.Error("/readyz failed while the last good files are in place")
	}
	// Access comes back with another version.
	pass3 := secret("db-pass")
	f.putSecret("us-east-1", "prod/db", ptr(dbJSON(user, pass3)), nil)
	f.do(func() { f.deny["prod/db"] = false })
	a.Eventually(10*time.Second, "recovery with the newest password", agenttest.FileIs(filepath.Join(dir, "db-password"), pass3))
	a.StopCleanly()

	// A second pod whose class names a secret that does not exist: the
	// first fetch fails and the termination message says why.
	missing := agentObjects + "- objectName: prod/missing\n  objectType: secretsmanager\n  objectAlias: missing\n"
	b := agenttest.Start(t, agenttest.Options{Config: config(filepath.Join(t.TempDir(), "secrets"), missing, 1500*time.Millisecond),
		NewProviders: providers, Pod: pod, Logs: logs})
	b.FailsFirstFetch([]string{"first fetch did not complete within 1.5s", "volume secrets", "SecretProviderClass " + ns + "/app-secrets (provider aws)", `object "missing"`, "NotFound"},
		user, pass1, pass2, pass3, key1, key2, dbJSON(user, pass3), tok)

	// The credentials STS issued must not have been logged either.
	f.do(func() {
		for id, k := range f.keys {
			if id != staticKeyID {
				logs.Secret(k.secret, k.session)
			}
		}
	})
	agenttest.CheckLogs(t, logs, agenttest.Expect{
		Class: ns + "/app-secrets", Provider: "aws",
		Objects:        []string{"db.json", "db-password", "api-key", "prod/db", "missing"},
		FailureReasons: []provider.Reason{provider.ReasonAccessDenied, provider.ReasonNotFound},
		MinLines:       15,
	})
}
