package aws_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsprov "github.com/ssinjector/ssi/internal/provider/aws"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// issuedKeys counts requests signed with keys the fake issued (through STS
// or the Pod Identity agent), as opposed to the static test key.
func issuedKeys(f *fakeAWS) (issued, static int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.signedWith {
		if k == staticKeyID {
			static += n
		} else {
			issued += n
		}
	}
	return issued, static
}

const irsaObjects = `
- objectName: prod/db
  objectType: secretsmanager
- objectName: /app/p
  objectType: ssmparameter
`

// TestIRSA: the pod's service-account token for sts.amazonaws.com is
// exchanged with STS AssumeRoleWithWebIdentity; the fake STS accepts it only
// after the test kube-apiserver's TokenReview authenticates it for that
// audience, and Secrets Manager and SSM calls must then be signed with the
// credentials STS issued. Credentials are cached until near expiry.
func TestIRSA(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	const role = "arn:aws:iam::123456789012:role/web-secrets"
	ns := env.Namespace(t, "irsa", nil)
	env.ServiceAccount(t, ns, "web", map[string]string{"eks.amazonaws.com/role-arn": role})

	f := newFakeAWS(t)
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", f.URL())
	var subjects []string
	f.assume = func(ctx context.Context, token string) (string, error) {
		tr, err := env.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{identity.AudienceAWSIRSA}},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("TokenReview: %w", err)
		}
		if !tr.Status.Authenticated {
			return "", fmt.Errorf("not authenticated for audience %s: %s", identity.AudienceAWSIRSA, tr.Status.Error)
		}
		if !slices.Contains(tr.Status.Audiences, identity.AudienceAWSIRSA) {
			return "", fmt.Errorf("token audiences %v lack %s", tr.Status.Audiences, identity.AudienceAWSIRSA)
		}
		subjects = append(subjects, tr.Status.User.Username)
		return tr.Status.User.Username, nil
	}
	f.putSecret("us-east-1", "prod/db", ptr("db-password-1"), nil)
	f.putParam("us-east-1", "/app/p", "SecureString", "param-1")
	class := parseClass(t, map[string]string{"region": "us-east-1", "objects": irsaObjects})

	mint := func(aud string) string {
		tok, err := env.Token(ctx, ns, "web", []string{aud}, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	podIdentity := func(tokens identity.TokenSource) identity.Identity {
		return identity.Identity{
			Pod:    identity.Pod{Namespace: ns, Name: "web-0", ServiceAccount: "web"},
			Cloud:  identity.Cloud{AWSRoleARN: role},
			Tokens: tokens,
		}
	}

	t.Run("token of the pod", func(t *testing.T) {
		fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: class,
			id: podIdentity(identity.StaticTokens{identity.AudienceAWSIRSA: mint(identity.AudienceAWSIRSA)})}
		files := fe.mustCycle()
		wantFile(t, files, "prod_db", "db-password-1", 0o644)
		wantFile(t, files, "_app_p", "param-1", 0o644)
		if got := f.counts()["sts.AssumeRoleWithWebIdentity"]; got != 1 {
			t.Errorf("AssumeRoleWithWebIdentity calls = %d, want 1", got)
		}
		if want := "system:serviceaccount:" + ns + ":web"; len(subjects) != 1 || subjects[0] != want {
			t.Errorf("STS subjects %v, want [%s]", subjects, want)
		}
		if got := f.roles[len(f.roles)-1]; got != role {
			t.Errorf("RoleArn sent %q, want %q", got, role)
		}
		issued, static := issuedKeys(f)
		if issued < 2 || static != 0 {
			t.Errorf("requests signed with STS credentials: %d, with other keys: %d; want >= 2 and 0", issued, static)
		}
		// Rotation cycles reuse the cached credentials.
		fe.mustCycle()
		fe.mustCycle()
		if got := f.counts()["sts.AssumeRoleWithWebIdentity"]; got != 0 {
			t.Errorf("AssumeRoleWithWebIdentity calls in two more cycles = %d, want 0 (cached)", got)
		}
	})

	t.Run("token file in local mode", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(mint(identity.AudienceAWSIRSA)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", file)
		fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: class, id: podIdentity(identity.StaticTokens{})}
		wantFile(t, fe.mustCycle(), "prod_db", "db-password-1", 0o644)
	})

	rejected := map[string]struct {
		tokens identity.TokenSource
		cause  string
	}{
		"token for another audience": {
			tokens: identity.StaticTokens{identity.AudienceAWSIRSA: mint("vault")},
			cause:  "InvalidIdentityToken",
		},
		"token of the API server's default audience": {
			tokens: identity.StaticTokens{identity.AudienceAWSIRSA: mint("https://kubernetes.default.svc.cluster.local")},
			cause:  "InvalidIdentityToken",
		},
		"forged token": {
			tokens: identity.StaticTokens{identity.AudienceAWSIRSA: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
			cause:  "InvalidIdentityToken",
		},
		"no token": {
			tokens: identity.StaticTokens{},
			cause:  `no service-account token for audience "sts.amazonaws.com"`,
		},
	}
	for name, tc := range rejected {
		t.Run(name, func(t *testing.T) {
			_, err := (&fetcher{t: t, p: awsprov.New(testOptions()), class: class, id: podIdentity(tc.tokens)}).cycle()
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Reason != provider.ReasonUnauthenticated {
				t.Fatalf("error = %v, want Unauthenticated", err)
			}
			t.Logf("message: %v", err)
			msg := err.Error()
			if !strings.Contains(msg, tc.cause) || !strings.Contains(msg, role) || !strings.Contains(msg, "team-a/db-creds") {
				t.Errorf("message %q lacks the cause %q, the role or the class", msg, tc.cause)
			}
			if tok, _ := tc.tokens.Token(ctx, identity.AudienceAWSIRSA); tok != "" && strings.Contains(msg, tok) {
				t.Errorf("message carries the token")
			}
		})
	}
}

// closedURL is an endpoint nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr + "/v1/credentials"
}

// TestPodIdentity: with usePodIdentity the provider asks the Pod Identity
// agent for credentials, presenting the pod's token for
// pods.eks.amazonaws.com as the Authorization header, choosing the agent
// address by preferredAddressType; AWS calls are then signed with the
// credentials the agent issued. The cases that reach the IPv6 agent need
// IPv6 loopback (::1); the others run without it.
func TestPodIdentity(t *testing.T) {
	const podToken = "pod-identity-token-for-web"
	check := func(_ context.Context, tok string) error {
		if tok != podToken {
			return errors.New("not the pod's token")
		}
		return nil
	}
	tokens := identity.StaticTokens{identity.AudienceAWSPodIdentity: podToken}
	cases := map[string]struct {
		pref     string
		ipv4Down bool
		fullURI  string // "v4" or "v6": AWS_CONTAINER_CREDENTIALS_FULL_URI of that agent
		tokens   identity.TokenSource
		// tokenFile sets AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to a file
		// holding this token.
		tokenFile string
		wantV4    bool
		wantV6    bool
		reason    provider.Reason
		cause     string
	}{
		"auto prefers IPv4":       {pref: "auto", tokens: tokens, wantV4: true},
		"auto falls back to IPv6": {pref: "", ipv4Down: true, tokens: tokens, wantV6: true},
		"ipv4":                    {pref: "ipv4", tokens: tokens, wantV4: true},
		"ipv6":                    {pref: "IPv6", tokens: tokens, wantV6: true},
		"ipv4 only, agent down":   {pref: "ipv4", ipv4Down: true, tokens: tokens, reason: provider.ReasonUnauthenticated, cause: "EKS Pod Identity agent"},
		"full URI override":       {pref: "ipv4", ipv4Down: true, fullURI: "v6", tokens: tokens, wantV6: true},
		"token file":              {pref: "ipv4", tokens: identity.StaticTokens{}, tokenFile: podToken, wantV4: true},
		"wrong token":             {pref: "ipv4", tokens: identity.StaticTokens{identity.AudienceAWSPodIdentity: "someone-else"}, reason: provider.ReasonUnauthenticated, cause: "token rejected"},
		"no token":                {pref: "ipv4", tokens: identity.StaticTokens{identity.AudienceAWSIRSA: podToken}, reason: provider.ReasonUnauthenticated, cause: `no service-account token for audience "pods.eks.amazonaws.com"`},
		"plain http to a remote host": {pref: "auto", fullURI: "http://10.1.2.3/creds", tokens: tokens, reason: provider.ReasonInvalidConfig,
			cause: "only allowed to a loopback address"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			isolateEnv(t)
			t.Setenv("AWS_ENDPOINT_URL", f.URL())
			f.putSecret("eu-central-1", "prod/db", ptr("db-password-1"), nil)
			f.putParam("eu-central-1", "/app/p", "String", "param-1")
			v4 := newFakePodIdentityAgent(t, "tcp4", f, check)
			// The agent at the IPv6 address listens on ::1 only in the
			// cases that reach it (they need IPv6 loopback); elsewhere a
			// second IPv4 listener stands in, so that the IPv4 cases never
			// depend on ::1 and still show the IPv6 address is not called.
			v6net := "tcp4"
			if tc.wantV6 {
				v6net = "tcp6"
			}
			v6 := newFakePodIdentityAgent(t, v6net, f, check)
			opts := testOptions()
			opts.PodIdentityIPv4URL, opts.PodIdentityIPv6URL = v4.URL(), v6.URL()
			if tc.ipv4Down {
				opts.PodIdentityIPv4URL = closedURL(t)
			}
			switch tc.fullURI {
			case "":
			case "v6":
				t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", v6.URL())
			default:
				t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", tc.fullURI)
			}
			if tc.tokenFile != "" {
				file := filepath.Join(t.TempDir(), "eks-pod-identity-token")
				if err := os.WriteFile(file, []byte(tc.tokenFile), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file)
			}
			class := parseClass(t, map[string]string{"region": "eu-central-1", "usePodIdentity": "true",
				"preferredAddressType": tc.pref, "objects": irsaObjects})
			id := testIdentity()
			id.Tokens = tc.tokens
			fe := &fetcher{t: t, p: awsprov.New(opts), class: class, id: id}
			files, err := fe.cycle()
			if tc.reason != "" {
				var pe *provider.Error
				if !errors.As(err, &pe) || pe.Reason != tc.reason || !strings.Contains(err.Error(), tc.cause) {
					t.Fatalf("error = %v, want %s containing %q", err, tc.reason, tc.cause)
				}
				if strings.Contains(err.Error(), podToken) {
					t.Errorf("message carries the token")
				}
				return
			}
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			wantFile(t, files, "prod_db", "db-password-1", 0o644)
			wantFile(t, files, "_app_p", "param-1", 0o644)
			if (v4.count() > 0) != tc.wantV4 || (v6.count() > 0) != tc.wantV6 {
				t.Errorf("agent calls: IPv4 %d, IPv6 %d; want IPv4 %v, IPv6 %v", v4.count(), v6.count(), tc.wantV4, tc.wantV6)
			}
			if issued, static := issuedKeys(f); issued < 2 || static != 0 {
				t.Errorf("requests signed with agent credentials: %d, other: %d", issued, static)
			}
			before := v4.count() + v6.count()
			fe.mustCycle()
			if after := v4.count() + v6.count(); after != before {
				t.Errorf("agent called again within the credentials' lifetime (%d → %d)", before, after)
			}
		})
	}
}

// TestDefaultChainWithoutCredentials: local mode with no credentials at
// all fails as Unauthenticated, naming the chain.
func TestDefaultChainWithoutCredentials(t *testing.T) {
	f := newFakeAWS(t)
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", f.URL())
	class := parseClass(t, map[string]string{"region": "us-east-1", "objects": irsaObjects})
	_, err := (&fetcher{t: t, p: awsprov.New(testOptions()), class: class, id: testIdentity()}).cycle()
	if provider.ReasonOf(err) != provider.ReasonUnauthenticated || !strings.Contains(err.Error(), "default credential chain") {
		t.Fatalf("error = %v, want Unauthenticated naming the default credential chain", err)
	}
	if n := f.get(func() int { return len(f.calls) }); n != 0 {
		t.Errorf("%d unsigned calls reached the backend", n)
	}
}

// TestOutsidePod: in the node shim the process's own identity (default
// chain, token files in its environment) is never lent to a pod.
func TestOutsidePod(t *testing.T) {
	const nodeToken = "token-of-the-node-shim"
	cases := map[string]struct {
		params map[string]string
		cloud  identity.Cloud
		reason provider.Reason
		cause  string
	}{
		"no role and no pod identity": {
			reason: provider.ReasonInvalidConfig, cause: "annotate its service account with eks.amazonaws.com/role-arn",
		},
		"IRSA without the pod's token": {
			cloud:  identity.Cloud{AWSRoleARN: "arn:aws:iam::123456789012:role/r"},
			reason: provider.ReasonUnauthenticated, cause: `no service-account token for audience "sts.amazonaws.com"`,
		},
		"Pod Identity without the pod's token": {
			params: map[string]string{"usePodIdentity": "true", "preferredAddressType": "ipv4"},
			reason: provider.ReasonUnauthenticated, cause: `no service-account token for audience "pods.eks.amazonaws.com"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			useFake(t, f) // the shim's own static credentials are in its environment
			f.assume = func(_ context.Context, tok string) (string, error) { return "node", nil }
			agent := newFakePodIdentityAgent(t, "tcp4", f, func(context.Context, string) error { return nil })
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(nodeToken), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", file)
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file)
			f.putSecret("us-east-1", "prod/db", ptr("v"), nil)
			params := map[string]string{"region": "us-east-1", "objects": irsaObjects}
			for k, v := range tc.params {
				params[k] = v
			}
			opts := testOptions()
			opts.OutsidePod = true
			opts.PodIdentityIPv4URL = agent.URL()
			id := testIdentity()
			id.Cloud = tc.cloud
			id.Tokens = identity.StaticTokens{}
			_, err := (&fetcher{t: t, p: awsprov.New(opts), class: parseClass(t, params), id: id}).cycle()
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Reason != tc.reason || !strings.Contains(err.Error(), tc.cause) {
				t.Fatalf("error = %v, want %s containing %q", err, tc.reason, tc.cause)
			}
			if n := f.get(func() int { return f.calls["sts.AssumeRoleWithWebIdentity"] }); n != 0 || agent.count() != 0 {
				t.Errorf("the node's token was used: %d STS calls, %d agent calls", n, agent.count())
			}
			if issued, static := issuedKeys(f); issued+static != 0 {
				t.Errorf("%d calls reached Secrets Manager or SSM", issued+static)
			}
		})
	}
}
