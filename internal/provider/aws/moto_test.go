package aws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// motoProxy sits between the provider and moto: it logs every call (the
// operation and the object it names) and can make one region fail with
// 503, the way a regional outage looks, for failover tests.
type motoProxy struct {
	srv *http.Server
	url string

	mu         sync.Mutex
	failRegion string
	log        []motoCall
}

type motoCall struct {
	region, op string
	body       map[string]any
}

var scopeRegion = regexp.MustCompile(`Credential=[^/]+/\d{8}/([a-z0-9-]+)/`)

func newMotoProxy(t *testing.T, moto string) *motoProxy {
	target, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	p := &motoProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + l.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		region := ""
		if m := scopeRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			region = m[1]
		}
		call := motoCall{region: region, op: r.Header.Get("X-Amz-Target")}
		_ = json.Unmarshal(body, &call.body)
		p.mu.Lock()
		p.log = append(p.log, call)
		fail := p.failRegion != "" && region == p.failRegion
		p.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"__type":"ServiceUnavailable","message":"region unavailable (test)"}`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// take returns and clears the call log.
func (p *motoProxy) take() []motoCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.log
	p.log = nil
	return l
}

func (p *motoProxy) setFailRegion(r string) {
	p.mu.Lock()
	p.failRegion = r
	p.mu.Unlock()
}

// opCounts counts calls by operation.
func opCounts(calls []motoCall) map[string]int {
	m := map[string]int{}
	for _, c := range calls {
		m[c.op]++
	}
	return m
}

// motoAdmin creates and rotates objects through moto's own API.
type motoAdmin struct {
	t   *testing.T
	sm  map[string]*secretsmanager.Client
	ssm map[string]*ssm.Client
}

func newMotoAdmin(t *testing.T, moto string, regions ...string) *motoAdmin {
	a := &motoAdmin{t: t, sm: map[string]*secretsmanager.Client{}, ssm: map[string]*ssm.Client{}}
	creds := credentials.NewStaticCredentialsProvider("testing", "testing", "")
	for _, r := range regions {
		cfg := aws.Config{Region: r, Credentials: creds, BaseEndpoint: aws.String(moto)}
		a.sm[r] = secretsmanager.NewFromConfig(cfg)
		a.ssm[r] = ssm.NewFromConfig(cfg)
	}
	return a
}

func (a *motoAdmin) createSecret(region, name string, str *string, bin []byte) (arn, version string) {
	a.t.Helper()
	out, err := a.sm[region].CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: str, SecretBinary: bin})
	if err != nil {
		a.t.Fatalf("moto CreateSecret %s: %v", name, err)
	}
	return aws.ToString(out.ARN), aws.ToString(out.VersionId)
}

// putSecret adds a version; with stages nil it becomes AWSCURRENT.
func (a *motoAdmin) putSecret(region, name, value string, stages ...string) string {
	a.t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)}
	if len(stages) > 0 {
		in.VersionStages = stages
	}
	out, err := a.sm[region].PutSecretValue(context.Background(), in)
	if err != nil {
		a.t.Fatalf("moto PutSecretValue %s: %v", name, err)
	}
	return aws.ToString(out.VersionId)
}

// moveStage moves a staging label to a version.
func (a *motoAdmin) moveStage(region, name, stage, to string) {
	a.t.Helper()
	d, err := a.sm[region].DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		a.t.Fatal(err)
	}
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String(stage), MoveToVersionId: aws.String(to)}
	for v, stages := range d.VersionIdsToStages {
		for _, s := range stages {
			if s == stage {
				in.RemoveFromVersionId = aws.String(v)
			}
		}
	}
	if _, err := a.sm[region].UpdateSecretVersionStage(context.Background(), in); err != nil {
		a.t.Fatalf("moto UpdateSecretVersionStage %s: %v", name, err)
	}
}

func (a *motoAdmin) putParam(region, name, value string, typ ssmtypes.ParameterType) int64 {
	a.t.Helper()
	out, err := a.ssm[region].PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(true)})
	if err != nil {
		a.t.Fatalf("moto PutParameter %s: %v", name, err)
	}
	return out.Version
}

func (a *motoAdmin) labelParam(region, name string, version int64, label string) {
	a.t.Helper()
	if _, err := a.ssm[region].LabelParameterVersion(context.Background(), &ssm.LabelParameterVersionInput{
		Name: aws.String(name), ParameterVersion: aws.Int64(version), Labels: []string{label}}); err != nil {
		a.t.Fatalf("moto LabelParameterVersion %s: %v", name, err)
	}
}

// TestMoto runs the provider against a real moto_server: objects are
// created, versioned and re-staged through moto's API, then fetched by the
// provider through the real SDK clients. (moto 5.2.1's GetParameters does
// not resolve parameter ARNs, which AWS does; SSM by ARN is covered by
// TestFetchThroughSDK against the fake.)
func TestMoto(t *testing.T) {
	moto := testenv.StartMoto(t)
	proxy := newMotoProxy(t, moto)
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", proxy.url)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	const east, west = "us-east-1", "us-west-2"
	admin := newMotoAdmin(t, moto, east, west)

	t.Run("objects and parameters", func(t *testing.T) {
		admin.createSecret(east, "prod/db", aws.String(`{"username":"admin","password":"pw-1","nested":{"key":"deep"}}`), nil)
		apiARN, _ := admin.createSecret(east, "prod/api", aws.String("api-key-1"), nil)
		admin.createSecret(east, "prod/cert", nil, []byte{0xde, 0xad, 0x00, 0xbe, 0xef})
		admin.putParam(east, "/app/plain", "plain-1", ssmtypes.ParameterTypeString)
		admin.putParam(east, "/app/plain", "plain-2", ssmtypes.ParameterTypeString)
		admin.labelParam(east, "/app/plain", 1, "stable")
		admin.putParam(east, "/app/secure", "secure-1", ssmtypes.ParameterTypeSecureString)

		class := parseClass(t, map[string]string{"region": east, "objects": `
- objectName: prod/db
  objectType: secretsmanager
  filePermission: "0600"
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: nested.key
      objectAlias: db-nested
      filePermission: "0640"
- objectName: ` + apiARN + `
  objectAlias: api-by-arn
- objectName: prod/cert
  objectType: secretsmanager
- objectName: /app/plain
  objectType: ssmparameter
- objectName: /app/plain
  objectType: ssmparameter
  objectVersion: "1"
  objectAlias: plain-v1
- objectName: /app/plain
  objectType: ssmparameter
  objectVersionLabel: stable
  objectAlias: plain-stable
- objectName: /app/secure
  objectType: ssmparameter
`})
		fe := &fetcher{t: t, p: newMotoProvider(), class: class, id: testIdentity()}
		files := fe.mustCycle()
		wantFile(t, files, "prod_db", `{"username":"admin","password":"pw-1","nested":{"key":"deep"}}`, 0o600)
		wantFile(t, files, "db-user", "admin", 0o600)
		wantFile(t, files, "db-nested", "deep", 0o640)
		wantFile(t, files, "api-by-arn", "api-key-1", 0o644)
		wantFile(t, files, "prod_cert", "\xde\xad\x00\xbe\xef", 0o644)
		wantFile(t, files, "_app_plain", "plain-2", 0o644)
		wantFile(t, files, "plain-v1", "plain-1", 0o644)
		wantFile(t, files, "plain-stable", "plain-1", 0o644)
		wantFile(t, files, "_app_secure", "secure-1", 0o644)
		if v := fe.version("_app_plain"); v != "2" {
			t.Errorf("version of _app_plain = %q, want 2", v)
		}

		// pathTranslation: a character, and off (nested files).
		for pt, want := range map[string][]string{"-": {"-app-plain", "prod-db"}, "False": {"app/plain", "prod/db"}} {
			c := parseClass(t, map[string]string{"region": east, "pathTranslation": pt, "objects": `
- objectName: /app/plain
  objectType: ssmparameter
- objectName: prod/db
  objectType: secretsmanager
  filePermission: "0400"
`})
			files := (&fetcher{t: t, p: newMotoProvider(), class: c, id: testIdentity()}).mustCycle()
			wantFile(t, files, want[0], "plain-2", 0o644)
			wantFile(t, files, want[1], `{"username":"admin","password":"pw-1","nested":{"key":"deep"}}`, 0o400)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		_, v1 := admin.createSecret(east, "rot/current", aws.String("current-1"), nil)
		admin.createSecret(east, "rot/other", aws.String("other-1"), nil)
		_, s1 := admin.createSecret(east, "rot/staged", aws.String("staged-1"), nil)
		admin.moveStage(east, "rot/staged", "BLUE", s1)
		_, p1 := admin.createSecret(east, "rot/pinned", aws.String("pinned-1"), nil)
		admin.putParam(east, "/rot/param", "param-1", ssmtypes.ParameterTypeSecureString)
		admin.putParam(east, "/rot/labelled", "labelled-1", ssmtypes.ParameterTypeString)
		admin.labelParam(east, "/rot/labelled", 1, "live")
		class := parseClass(t, map[string]string{"region": east, "objects": `
- objectName: rot/current
  objectType: secretsmanager
- objectName: rot/other
  objectType: secretsmanager
- objectName: rot/staged
  objectType: secretsmanager
  objectVersionLabel: BLUE
- objectName: rot/pinned
  objectType: secretsmanager
  objectVersion: ` + p1 + `
- objectName: /rot/param
  objectType: ssmparameter
- objectName: /rot/labelled
  objectType: ssmparameter
  objectVersionLabel: live
- objectName: /rot/labelled
  objectType: ssmparameter
  objectVersion: "1"
  objectAlias: labelled-v1
`})
		fe := &fetcher{t: t, p: newMotoProvider(), class: class, id: testIdentity()}
		fe.mustCycle()
		if fe.version("rot_current") != v1 {
			t.Errorf("version of rot_current = %q, want %q", fe.version("rot_current"), v1)
		}
		proxy.take()

		// Quiet cycle: everything unchanged; the pinned secret and the
		// pinned parameter version are not asked for at all.
		fe.mustCycle()
		quiet := proxy.take()
		if u := fe.unchanged(); len(u) != 7 {
			t.Errorf("quiet cycle: unchanged %v, want all 7", u)
		}
		t.Logf("moto quiet cycle, 7 objects (1 pinned secret, 1 pinned parameter): %s", sortedCounts(opCounts(quiet)))
		for _, c := range quiet {
			if strings.Contains(fmt.Sprint(c.body), "rot/pinned") || strings.Contains(fmt.Sprint(c.body), "/rot/labelled:1") {
				t.Errorf("pinned object asked for in a quiet cycle: %s %v", c.op, c.body)
			}
			if c.op == "secretsmanager.GetSecretValue" {
				t.Errorf("GetSecretValue in a quiet cycle: %v", c.body)
			}
		}

		// Rotate through moto: new AWSCURRENT, BLUE moved to a new
		// version, a new parameter version, the label moved.
		v2 := admin.putSecret(east, "rot/current", "current-2")
		s2 := admin.putSecret(east, "rot/staged", "staged-2", "PENDING")
		admin.moveStage(east, "rot/staged", "BLUE", s2)
		admin.putParam(east, "/rot/param", "param-2", ssmtypes.ParameterTypeSecureString)
		lv2 := admin.putParam(east, "/rot/labelled", "labelled-2", ssmtypes.ParameterTypeString)
		admin.labelParam(east, "/rot/labelled", lv2, "live")
		admin.putSecret(east, "rot/pinned", "pinned-2")

		files := fe.mustCycle()
		rotated := proxy.take()
		wantFile(t, files, "rot_current", "current-2", 0o644)
		wantFile(t, files, "rot_staged", "staged-2", 0o644)
		wantFile(t, files, "_rot_param", "param-2", 0o644)
		wantFile(t, files, "_rot_labelled", "labelled-2", 0o644)
		wantFile(t, files, "labelled-v1", "labelled-1", 0o644)
		wantFile(t, files, "rot_pinned", "pinned-1", 0o644)
		wantFile(t, files, "rot_other", "other-1", 0o644)
		if fe.version("rot_current") != v2 || fe.version("rot_staged") != s2 || fe.version("_rot_param") != "2" || fe.version("rot_pinned") != p1 {
			t.Errorf("versions after rotation: current %q staged %q param %q pinned %q", fe.version("rot_current"),
				fe.version("rot_staged"), fe.version("_rot_param"), fe.version("rot_pinned"))
		}
		if u := sorted(fe.unchanged()); strings.Join(u, ",") != "labelled-v1,rot_other,rot_pinned" {
			t.Errorf("unchanged after rotation = %v, want [labelled-v1 rot_other rot_pinned]", u)
		}
		for _, c := range rotated {
			if strings.Contains(fmt.Sprint(c.body), "rot/pinned") {
				t.Errorf("pinned secret asked for after rotation: %s %v", c.op, c.body)
			}
		}
		t.Logf("moto rotation cycle: %s", sortedCounts(opCounts(rotated)))
	})

	t.Run("failover", func(t *testing.T) {
		admin.createSecret(east, "fo/db", aws.String("east-db"), nil)
		admin.createSecret(west, "fo/db-west", aws.String("west-db"), nil)
		admin.createSecret(east, "fo/api", aws.String("east-api"), nil)
		admin.createSecret(west, "fo/api", aws.String("west-api"), nil)
		admin.putParam(east, "/fo/p", "east-p", ssmtypes.ParameterTypeString)
		admin.putParam(west, "/fo/p", "west-p", ssmtypes.ParameterTypeString)
		class := parseClass(t, map[string]string{"region": east, "failoverRegion": west, "objects": `
- objectName: fo/db
  objectType: secretsmanager
  objectAlias: db
  failoverObject:
    objectName: fo/db-west
- objectName: fo/api
  objectType: secretsmanager
- objectName: /fo/p
  objectType: ssmparameter
`})
		proxy.take()
		files := (&fetcher{t: t, p: newMotoProvider(), class: class, id: testIdentity()}).mustCycle()
		wantFile(t, files, "db", "east-db", 0o644)
		wantFile(t, files, "fo_api", "east-api", 0o644)
		wantFile(t, files, "_fo_p", "east-p", 0o644)
		for _, c := range proxy.take() {
			if c.region != east {
				t.Errorf("call to %s while the primary region answers: %s", c.region, c.op)
			}
		}
		proxy.setFailRegion(east)
		defer proxy.setFailRegion("")
		files = (&fetcher{t: t, p: newMotoProvider(), class: class, id: testIdentity()}).mustCycle()
		wantFile(t, files, "db", "west-db", 0o644)
		wantFile(t, files, "fo_api", "west-api", 0o644)
		wantFile(t, files, "_fo_p", "west-p", 0o644)
	})

	t.Run("calls per cycle", func(t *testing.T) {
		for _, n := range []int{1, 10, 45} {
			var objects strings.Builder
			for i := 0; i < n; i++ {
				if i%2 == 0 {
					name := fmt.Sprintf("count%d/s%02d", n, i)
					admin.createSecret(east, name, aws.String("v"), nil)
					fmt.Fprintf(&objects, "- objectName: %s\n  objectType: secretsmanager\n", name)
				} else {
					name := fmt.Sprintf("/count%d/p%02d", n, i)
					admin.putParam(east, name, "v", ssmtypes.ParameterTypeSecureString)
					fmt.Fprintf(&objects, "- objectName: %s\n  objectType: ssmparameter\n", name)
				}
			}
			fe := &fetcher{t: t, p: newMotoProvider(), class: parseClass(t, map[string]string{"region": east, "objects": objects.String()}), id: testIdentity()}
			fe.mustCycle()
			proxy.take()
			fe.mustCycle()
			calls := opCounts(proxy.take())
			total := 0
			for _, c := range calls {
				total += c
			}
			sm, ps := (n+1)/2, n/2
			t.Logf("moto, N=%d (%d secrets, %d parameters) unchanged: %d calls [%s]", n, sm, ps, total, sortedCounts(calls))
			if u := fe.unchanged(); len(u) != n {
				t.Errorf("N=%d: %d unchanged", n, len(u))
			}
			if total > n || calls["AmazonSSM.GetParameters"] != ceilDiv(ps, 10) {
				t.Errorf("N=%d: %d calls [%s], want at most %d with %d GetParameters", n, total, sortedCounts(calls), n, ceilDiv(ps, 10))
			}
			if sm >= 2 && calls["secretsmanager.BatchGetSecretValue"] != ceilDiv(sm, 20) {
				t.Errorf("N=%d: BatchGetSecretValue calls %d, want %d", n, calls["secretsmanager.BatchGetSecretValue"], ceilDiv(sm, 20))
			}
		}
	})

	t.Run("errors name the object, never the value", func(t *testing.T) {
		admin.createSecret(east, "err/plain", aws.String("MOTO-SECRET-VALUE not json"), nil)
		cases := map[string]struct {
			objects string
			cause   string
		}{
			"missing secret":    {"- objectName: err/missing\n  objectType: secretsmanager\n", "ResourceNotFoundException"},
			"missing parameter": {"- objectName: /err/missing\n  objectType: ssmparameter\n", `"/err/missing"`},
			"missing version":   {"- objectName: err/plain\n  objectType: secretsmanager\n  objectVersion: 11111111-2222-3333-4444-555555555555\n", "ResourceNotFoundException"},
			"not JSON":          {"- objectName: err/plain\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: a\n", "not valid JSON"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				_, err := (&fetcher{t: t, p: newMotoProvider(), class: parseClass(t, map[string]string{"region": east, "objects": tc.objects}), id: testIdentity()}).cycle()
				if err == nil || !strings.Contains(err.Error(), tc.cause) || !strings.Contains(err.Error(), "team-a/db-creds") {
					t.Fatalf("error = %v, want one naming the class and %q", err, tc.cause)
				}
				if strings.Contains(err.Error(), "MOTO-SECRET-VALUE") {
					t.Errorf("error carries the value: %v", err)
				}
			})
		}
	})
}

func newMotoProvider() *awsprov.Provider { return awsprov.New(testOptions()) }
