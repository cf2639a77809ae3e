package secretsync

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// stsRecorder sits in front of moto and keeps the web identity tokens of
// AssumeRoleWithWebIdentity calls, to check whom they were minted for.
type stsRecorder struct {
	url    string
	mu     gosync.Mutex
	tokens []string
	roles  []string
}

func newSTSRecorder(t *testing.T, moto string) *stsRecorder {
	target, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	rec := &stsRecorder{}
	rp := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec.url = "http://" + l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if q, err := url.ParseQuery(string(body)); err == nil && q.Get("Action") == "AssumeRoleWithWebIdentity" {
			rec.mu.Lock()
			rec.tokens = append(rec.tokens, q.Get("WebIdentityToken"))
			rec.roles = append(rec.roles, q.Get("RoleArn"))
			rec.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rec
}

// The seed guide's example exactly as written (provider aws, namespace
// production), served by the real AWS provider through IRSA against a real
// moto_server: the controller mints a token for the pod's service account
// with audience sts.amazonaws.com, bound to the pod; the provider exchanges
// it at STS for the role of eks.amazonaws.com/role-arn and reads Secrets
// Manager. A new secret version reaches the Secret; removing the pod
// removes it.
func TestAWSSeedExampleWithMoto(t *testing.T) {
	env := controlPlane(t)
	moto := testenv.StartMoto(t)
	rec := newSTSRecorder(t, moto)
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_STS", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", rec.url)
	t.Setenv("AWS_REGION", "us-east-1")

	admin := secretsmanager.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(moto),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	ctx := context.Background()
	if _, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("database-creds"), SecretString: aws.String(dbCreds)}); err != nil {
		t.Fatalf("moto CreateSecret: %v", err)
	}

	ns := namedNamespace(t, env, "production")
	const role = "arn:aws:iam::123456789012:role/app"
	serviceAccount(t, env, ns, "default", nil)
	sa := &corev1.ServiceAccount{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, sa); err != nil {
		t.Fatal(err)
	}
	sa.Annotations = map[string]string{identity.SAAnnotationAWSRoleARN: role}
	if err := env.Client.Update(ctx, sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sa.Annotations = nil
		_ = env.Client.Update(context.Background(), sa)
	})

	p := awsprov.New(awsprov.Options{OutsidePod: true, MaxAttempts: 1})
	startController(t, env, nil, Options{Providers: provider.NewSet(p), RotationInterval: 500 * time.Millisecond}, nil)
	create(t, env, loadClass(t, filepath.Join(testenv.RepoRoot(), "test/testdata/seed/provider-with-sync.yaml"), ns))
	pod := csiPod(ns, "web-0", "default", "aws-secrets-with-sync")
	create(t, env, pod)

	s := waitSecret(t, env, ns, "database-credentials", nil)
	if string(s.Data["credentials"]) != dbCreds || s.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type %s keys %v", s.Type, sortedKeys(s.Data))
	}
	rec.mu.Lock()
	tokens, roles := append([]string(nil), rec.tokens...), append([]string(nil), rec.roles...)
	rec.mu.Unlock()
	if len(tokens) == 0 {
		t.Fatal("no AssumeRoleWithWebIdentity call reached STS")
	}
	c, err := decodeClaims(tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	if roles[0] != role || c.Sub != "system:serviceaccount:production:default" || len(c.Aud) != 1 || c.Aud[0] != "sts.amazonaws.com" ||
		c.Kubernetes.Pod == nil || c.Kubernetes.Pod.UID != string(pod.UID) {
		t.Errorf("STS got role %s and a token for %s, audiences %v, pod %+v", roles[0], c.Sub, c.Aud, c.Kubernetes.Pod)
	}

	rotated := strings.Replace(dbCreds, "s3cr3t-1", "s3cr3t-2", 1)
	if _, err := admin.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("database-creds"), SecretString: aws.String(rotated)}); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "database-credentials", func(s *corev1.Secret) string {
		if string(s.Data["credentials"]) != rotated {
			return "not rotated"
		}
		return ""
	})
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "database-credentials")
}
