package aws_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ssinjector/ssi/internal/provider"
	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
)

// TestFetchThroughSDK drives the real SDK clients against the fake over
// HTTP with the default credential chain (local mode): the fake checks
// every request's SigV4 signature against the static key.
func TestFetchThroughSDK(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	const region = "us-east-1"
	dbV1 := f.putSecret(region, "prod/db", ptr(`{"username":"admin","pass-word":"s3cr3t-v1","port":5432}`), nil)
	f.putSecret(region, "prod/api", ptr("api-key-1"), nil)
	apiARN := f.findSecret(region, "prod/api").arn
	f.putSecret(region, "blob", nil, []byte{0, 1, 2, 0xff})
	f.putParam(region, "/app/plain", "String", "plain-1")
	f.putParam(region, "/app/plain", "String", "plain-2")
	f.labelParam(region, "/app/plain", "stable", 1)
	f.putParam(region, "/app/secure", "SecureString", "decrypted-secure")
	dbV2 := f.putSecret(region, "prod/db", ptr(`{"username":"admin","pass-word":"s3cr3t-v2","port":5432}`), nil)

	c := parseClass(t, map[string]string{"region": region, "objects": `
- objectName: prod/db
  objectType: secretsmanager
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: '"pass-word"'
      objectAlias: db-pass
      filePermission: "0400"
- objectName: ` + apiARN + `
  objectAlias: api
- objectName: blob
  objectType: secretsmanager
  filePermission: "0600"
- objectName: /app/plain
  objectType: ssmparameter
- objectName: /app/secure
  objectType: ssmparameter
  objectAlias: secure
- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/app/secure
  objectAlias: secure-by-arn
- objectName: /app/plain
  objectType: ssmparameter
  objectVersion: "1"
  objectAlias: plain-v1
- objectName: /app/plain
  objectType: ssmparameter
  objectVersionLabel: stable
  objectAlias: plain-stable
- objectName: prod/db
  objectType: secretsmanager
  objectVersionLabel: AWSPREVIOUS
  objectAlias: db-previous
`})
	fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: c, id: testIdentity()}
	files := fe.mustCycle()
	wantFile(t, files, "prod_db", `{"username":"admin","pass-word":"s3cr3t-v2","port":5432}`, 0o644)
	wantFile(t, files, "db-user", "admin", 0o644)
	wantFile(t, files, "db-pass", "s3cr3t-v2", 0o400)
	wantFile(t, files, "api", "api-key-1", 0o644)
	wantFile(t, files, "blob", "\x00\x01\x02\xff", 0o600)
	wantFile(t, files, "_app_plain", "plain-2", 0o644)
	wantFile(t, files, "secure", "decrypted-secure", 0o644)
	wantFile(t, files, "secure-by-arn", "decrypted-secure", 0o644)
	wantFile(t, files, "plain-v1", "plain-1", 0o644)
	wantFile(t, files, "plain-stable", "plain-1", 0o644)
	wantFile(t, files, "db-previous", `{"username":"admin","pass-word":"s3cr3t-v1","port":5432}`, 0o644)
	if len(files) != 11 {
		t.Errorf("got %d files, want 11", len(files))
	}
	for id, want := range map[string]string{"prod_db": dbV2, "db-user": dbV2, "db-pass": dbV2, "db-previous": dbV1,
		"_app_plain": "2", "plain-v1": "1", "plain-stable": "1", "secure": "1"} {
		if got := fe.version(id); got != want {
			t.Errorf("version of %s = %q, want %q", id, got, want)
		}
	}
	if n := f.get(func() int { return f.signedWith[staticKeyID] }); n == 0 {
		t.Errorf("no request was signed with the static key")
	}

	// A cycle with nothing changed fetches no content.
	f.counts()
	fe.mustCycle()
	if u := fe.unchanged(); len(u) != 11 {
		t.Errorf("unchanged after a quiet cycle: %v, want all 11", u)
	}
	// Rotation: a new AWSCURRENT of prod/db reaches the object and its
	// extracted files; AWSPREVIOUS moves too.
	dbV3 := f.putSecret(region, "prod/db", ptr(`{"username":"admin2","pass-word":"s3cr3t-v3","port":5432}`), nil)
	files = fe.mustCycle()
	wantFile(t, files, "db-pass", "s3cr3t-v3", 0o400)
	wantFile(t, files, "db-user", "admin2", 0o644)
	wantFile(t, files, "db-previous", `{"username":"admin","pass-word":"s3cr3t-v2","port":5432}`, 0o644)
	if got := fe.version("db-pass"); got != dbV3 {
		t.Errorf("version of db-pass after rotation = %q, want %q", got, dbV3)
	}
	wantUnchanged := []string{"_app_plain", "api", "blob", "plain-stable", "plain-v1", "secure", "secure-by-arn"}
	if u := fe.unchanged(); !slices.Equal(sorted(u), wantUnchanged) {
		t.Errorf("unchanged after rotating prod/db = %v, want %v", sorted(u), wantUnchanged)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestRotationCallCounts counts backend calls per rotation cycle of N
// unchanged objects. Targets: at most N calls, and at most ceil(N/20)
// BatchGetSecretValue / ceil(N/10) GetParameters where the APIs batch.
func TestRotationCallCounts(t *testing.T) {
	type shape struct {
		sm, ssm int
		// smLabel gives Secrets Manager objects a custom stage label,
		// which BatchGetSecretValue cannot select.
		smLabel bool
		// pinned pins every object with objectVersion.
		pinned bool
	}
	cases := map[string]struct {
		shape     shape
		denyBatch bool
	}{}
	for _, n := range []int{1, 10, 45} {
		cases[fmt.Sprintf("sm/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{sm: n}}
		cases[fmt.Sprintf("sm-batch-denied/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{sm: n}, denyBatch: true}
		cases[fmt.Sprintf("sm-stage-label/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{sm: n, smLabel: true}}
		cases[fmt.Sprintf("ssm/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{ssm: n}}
		cases[fmt.Sprintf("mixed/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{sm: (n + 1) / 2, ssm: n / 2}}
		cases[fmt.Sprintf("pinned/N=%d", n)] = struct {
			shape     shape
			denyBatch bool
		}{shape: shape{sm: (n + 1) / 2, ssm: n / 2, pinned: true}}
	}
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	slices.Sort(names)
	var report []string
	for _, name := range names {
		tc := cases[name]
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			useFake(t, f)
			f.do(func() { f.denyBatch = tc.denyBatch })
			const region = "eu-west-1"
			var objects strings.Builder
			var lastSM string
			for i := 0; i < tc.shape.sm; i++ {
				name := fmt.Sprintf("svc/secret-%02d", i)
				v := f.putSecret(region, name, ptr(fmt.Sprintf("value-%d-a", i)), nil, "STABLE")
				fmt.Fprintf(&objects, "- objectName: %s\n  objectType: secretsmanager\n", name)
				if tc.shape.smLabel {
					objects.WriteString("  objectVersionLabel: STABLE\n")
				}
				if tc.shape.pinned {
					fmt.Fprintf(&objects, "  objectVersion: %q\n", v)
				}
				lastSM = name
			}
			for i := 0; i < tc.shape.ssm; i++ {
				name := fmt.Sprintf("/svc/param-%02d", i)
				f.putParam(region, name, "SecureString", fmt.Sprintf("param-%d-a", i))
				fmt.Fprintf(&objects, "- objectName: %s\n  objectType: ssmparameter\n", name)
				if tc.shape.pinned {
					objects.WriteString("  objectVersion: \"1\"\n")
				}
			}
			n := tc.shape.sm + tc.shape.ssm
			fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: parseClass(t, map[string]string{
				"region": region, "objects": objects.String()}), id: testIdentity()}
			fe.mustCycle()
			first := f.counts()

			fe.mustCycle()
			rot := f.counts()
			if u := fe.unchanged(); len(u) != n {
				t.Fatalf("rotation cycle: %d of %d objects unchanged", len(u), n)
			}
			total := 0
			for _, c := range rot {
				total += c
			}
			batch, params := rot["secretsmanager.BatchGetSecretValue"], rot["ssm.GetParameters"]
			describes, gets := rot["secretsmanager.DescribeSecret"], rot["secretsmanager.GetSecretValue"]
			switch {
			case tc.shape.pinned:
				if total != 0 {
					t.Errorf("pinned objects cost %d calls per cycle, want 0 (%s)", total, sortedCounts(rot))
				}
			default:
				if total > n {
					t.Errorf("%d calls for %d unchanged objects (%s)", total, n, sortedCounts(rot))
				}
				if gets != 0 {
					t.Errorf("GetSecretValue called %d times for unchanged secrets", gets)
				}
				if want := ceilDiv(tc.shape.ssm, 10); params != want {
					t.Errorf("GetParameters calls = %d, want %d", params, want)
				}
				wantBatch := 0
				if tc.shape.sm >= 2 && !tc.denyBatch && !tc.shape.smLabel {
					wantBatch = ceilDiv(tc.shape.sm, 20)
				}
				if batch != wantBatch {
					t.Errorf("BatchGetSecretValue calls = %d, want %d", batch, wantBatch)
				}
				if wantDescribe := tc.shape.sm - min(tc.shape.sm, wantBatch*20); describes != wantDescribe {
					t.Errorf("DescribeSecret calls = %d, want %d", describes, wantDescribe)
				}
			}
			line := fmt.Sprintf("%-26s N=%2d first fetch: %-80s rotation (unchanged): %d calls [%s]",
				name, n, sortedCounts(first), total, sortedCounts(rot))
			t.Log(line)
			report = append(report, line)

			// A changed object is picked up within the same call budget
			// (plus one GetSecretValue where the check carries no value).
			if lastSM != "" && !tc.shape.pinned {
				f.putSecret(region, lastSM, ptr("rotated"), nil, "STABLE")
				files := fe.mustCycle()
				file := strings.ReplaceAll(lastSM, "/", "_")
				if got := string(files[file].Data); got != "rotated" {
					t.Errorf("after rotating %s: file %s = %q, want %q", lastSM, file, got, "rotated")
				}
				if u := fe.unchanged(); len(u) != n-1 {
					t.Errorf("after rotating one secret: %d unchanged, want %d", len(u), n-1)
				}
				changed := f.counts()
				changedTotal := 0
				for _, c := range changed {
					changedTotal += c
				}
				if changedTotal > total+1 {
					t.Errorf("a cycle with one change cost %d calls, want at most %d (%s)", changedTotal, total+1, sortedCounts(changed))
				}
			}
		})
	}
	t.Log("calls per cycle:\n" + strings.Join(report, "\n"))
}

func ceilDiv(a, b int) int { return int(math.Ceil(float64(a) / float64(b))) }

// TestBatchDenialRemembered: with the seed guide's policy (no
// BatchGetSecretValue) the provider falls back to per-secret calls, keeps
// doing so without probing every cycle, and probes again after
// BatchReprobe.
func TestBatchDenialRemembered(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	f.do(func() { f.denyBatch = true })
	const region = "us-west-2"
	var objects strings.Builder
	for i := 0; i < 3; i++ {
		f.putSecret(region, fmt.Sprintf("s%d", i), ptr(fmt.Sprintf("v%d", i)), nil)
		fmt.Fprintf(&objects, "- objectName: s%d\n  objectType: secretsmanager\n", i)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	opts := testOptions()
	opts.Clock = clk
	opts.BatchReprobe = time.Hour
	fe := &fetcher{t: t, p: awsprov.New(opts), class: parseClass(t, map[string]string{"region": region, "objects": objects.String()}), id: testIdentity()}

	files := fe.mustCycle()
	wantFile(t, files, "s2", "v2", 0o644)
	if got := f.counts(); got["secretsmanager.BatchGetSecretValue"] != 1 || got["secretsmanager.GetSecretValue"] != 3 {
		t.Errorf("first cycle: %s, want one denied BatchGetSecretValue then 3 GetSecretValue", sortedCounts(got))
	}
	fe.mustCycle()
	if got := f.counts(); got["secretsmanager.BatchGetSecretValue"] != 0 || got["secretsmanager.DescribeSecret"] != 3 || len(got) != 1 {
		t.Errorf("second cycle: %s, want exactly 3 DescribeSecret", sortedCounts(got))
	}
	clk.Step(61 * time.Minute)
	f.do(func() { f.denyBatch = false })
	fe.mustCycle()
	if got := f.counts(); got["secretsmanager.BatchGetSecretValue"] != 1 || len(got) != 1 {
		t.Errorf("after BatchReprobe: %s, want one BatchGetSecretValue", sortedCounts(got))
	}
}

// TestErrorPaths: every failure is a *provider.Error whose message names
// the class, the object and the cause, and never carries a secret value.
func TestErrorPaths(t *testing.T) {
	const region = "us-east-1"
	const secretValue = "TOP-SECRET-VALUE-9f3a"
	cases := map[string]struct {
		objects string
		setup   func(f *fakeAWS)
		params  map[string]string
		reason  provider.Reason
		object  string
		cause   string
	}{
		"secret not found": {
			objects: "- objectName: missing\n  objectType: secretsmanager\n",
			reason:  provider.ReasonNotFound, object: "missing", cause: "ResourceNotFoundException",
		},
		"secret not found in a batch": {
			objects: "- objectName: present\n  objectType: secretsmanager\n- objectName: missing\n  objectType: secretsmanager\n",
			reason:  provider.ReasonNotFound, object: "missing", cause: "BatchGetSecretValue of secret \"missing\"",
		},
		"parameter not found": {
			objects: "- objectName: /nope\n  objectType: ssmparameter\n",
			reason:  provider.ReasonNotFound, object: "_nope", cause: `GetParameters of parameter "/nope"`,
		},
		"secret access denied": {
			objects: "- objectName: present\n  objectType: secretsmanager\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.deny["present"] = true }) },
			reason:  provider.ReasonAccessDenied, object: "present", cause: "AccessDeniedException",
		},
		"secret access denied in a batch": {
			objects: "- objectName: present\n  objectType: secretsmanager\n- objectName: other\n  objectType: secretsmanager\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.deny["other"] = true }) },
			reason:  provider.ReasonAccessDenied, object: "other", cause: "AccessDeniedException",
		},
		"parameter access denied": {
			objects: "- objectName: /app/p\n  objectType: ssmparameter\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.deny["/app/p"] = true }) },
			reason:  provider.ReasonAccessDenied, object: "_app_p", cause: "AccessDeniedException",
		},
		"secret throttled": {
			objects: "- objectName: present\n  objectType: secretsmanager\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.failOps["secretsmanager.GetSecretValue"] = "ThrottlingException" }) },
			reason:  provider.ReasonThrottled, object: "present", cause: "ThrottlingException",
		},
		"batch throttled": {
			objects: "- objectName: present\n  objectType: secretsmanager\n- objectName: other\n  objectType: secretsmanager\n",
			setup: func(f *fakeAWS) {
				f.do(func() { f.failOps["secretsmanager.BatchGetSecretValue"] = "ThrottlingException" })
			},
			reason: provider.ReasonThrottled, object: "present", cause: "ThrottlingException",
		},
		"parameters throttled": {
			objects: "- objectName: /app/p\n  objectType: ssmparameter\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.failOps["ssm.GetParameters"] = "ThrottlingException" }) },
			reason:  provider.ReasonThrottled, object: "_app_p", cause: "ThrottlingException",
		},
		"service unavailable": {
			objects: "- objectName: present\n  objectType: secretsmanager\n",
			setup:   func(f *fakeAWS) { f.do(func() { f.failOps["secretsmanager.GetSecretValue"] = "InternalServiceError" }) },
			reason:  provider.ReasonUnavailable, object: "present", cause: "InternalServiceError",
		},
		"jmesPath on a value that is not JSON": {
			objects: "- objectName: plain\n  objectType: secretsmanager\n  jmesPath:\n    - path: user\n      objectAlias: user\n",
			reason:  provider.ReasonInvalidContent, object: "plain", cause: `value of "plain" is not valid JSON`,
		},
		"jmesPath on a malformed JSON parameter": {
			objects: "- objectName: /app/json\n  objectType: ssmparameter\n  jmesPath:\n    - path: user\n      objectAlias: user\n",
			reason:  provider.ReasonInvalidContent, object: "_app_json", cause: "not valid JSON",
		},
		"jmesPath yields a number": {
			objects: "- objectName: json\n  objectType: secretsmanager\n  jmesPath:\n    - path: port\n      objectAlias: port\n",
			reason:  provider.ReasonInvalidContent, object: "json", cause: `JMES path "port" for objectAlias "port" yields a JSON number`,
		},
		"jmesPath points nowhere": {
			objects: "- objectName: json\n  objectType: secretsmanager\n  jmesPath:\n    - path: nothere\n      objectAlias: x\n",
			reason:  provider.ReasonInvalidContent, object: "json", cause: "does not point to a value",
		},
		// An expression that does not compile is refused at admission
		// (spc.CompileAWSJMESPath; internal/spc/conformance_aws_test.go),
		// so no class reaching the fetch has one (TestExtract covers the
		// fetch's own check).
		"secret version missing": {
			objects: "- objectName: present\n  objectType: secretsmanager\n  objectVersion: 00000000-dead-beef-0000-000000000000\n",
			reason:  provider.ReasonNotFound, object: "present", cause: `version "00000000-dead-beef-0000-000000000000"`,
		},
		"secret stage missing": {
			objects: "- objectName: present\n  objectType: secretsmanager\n  objectVersionLabel: NOPE\n",
			reason:  provider.ReasonNotFound, object: "present", cause: `stage "NOPE"`,
		},
		"parameter version missing": {
			objects: "- objectName: /app/p\n  objectType: ssmparameter\n  objectVersion: \"7\"\n",
			reason:  provider.ReasonNotFound, object: "_app_p", cause: `"/app/p:7"`,
		},
		"parameter label missing": {
			objects: "- objectName: /app/p\n  objectType: ssmparameter\n  objectVersionLabel: nope\n",
			reason:  provider.ReasonNotFound, object: "_app_p", cause: `"/app/p:nope"`,
		},
		"wrong credentials": {
			objects: "- objectName: present\n  objectType: secretsmanager\n",
			setup: func(f *fakeAWS) {
				f.mu.Lock()
				delete(f.keys, staticKeyID)
				f.mu.Unlock()
			},
			reason: provider.ReasonUnauthenticated, object: "present", cause: "InvalidSignatureException",
		},
		"ARN in another region": {
			objects: "- objectName: arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf\n",
			params:  map[string]string{"region": ""},
			reason:  provider.ReasonInvalidConfig, object: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
			cause: `is in region "eu-west-1", but the primary region is "us-east-1"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeAWS(t)
			useFake(t, f)
			f.putSecret(region, "present", ptr(secretValue), nil)
			f.putSecret(region, "other", ptr(secretValue), nil)
			f.putSecret(region, "plain", ptr(secretValue+" not json"), nil)
			f.putSecret(region, "json", ptr(`{"user":"`+secretValue+`","port":5432}`), nil)
			f.putParam(region, "/app/p", "SecureString", secretValue)
			f.putParam(region, "/app/json", "SecureString", `{"user": "`+secretValue+`", `)
			if tc.setup != nil {
				tc.setup(f)
			}
			params := map[string]string{"region": region, "objects": tc.objects}
			for k, v := range tc.params {
				params[k] = v
			}
			if params["region"] == "" {
				t.Setenv("AWS_REGION", region)
			}
			fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: parseClass(t, params), id: testIdentity()}
			_, err := fe.cycle()
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
			}
			msg := err.Error()
			t.Logf("message: %s", msg)
			if pe.Reason != tc.reason {
				t.Errorf("reason %s, want %s", pe.Reason, tc.reason)
			}
			if pe.Object != tc.object {
				t.Errorf("object %q, want %q", pe.Object, tc.object)
			}
			for _, want := range []string{testNamespace + "/" + testClass, "provider aws", fmt.Sprintf("object %q", tc.object), tc.cause} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
			if strings.Contains(msg, secretValue) || strings.Contains(msg, "s3cr3t") {
				t.Errorf("message carries the secret value: %q", msg)
			}
		})
	}
}

// TestNoRegion: without parameters.region and AWS_REGION the class fails
// with a message that says what to set.
func TestNoRegion(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	c := parseClass(t, map[string]string{"objects": "- objectName: x\n  objectType: secretsmanager\n"})
	_, err := awsprov.New(testOptions()).Fetch(t.Context(), provider.Request{Class: c, Identity: testIdentity()})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Reason != provider.ReasonInvalidConfig || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("error = %v, want InvalidConfig naming AWS_REGION", err)
	}
}

// TestFailoverFake: the failover region answers when the primary region is
// unavailable (5xx), for secrets and parameters, with failoverObject
// names; a client error in the primary region (not found) does not fail
// over, as upstream.
func TestFailoverFake(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	f.putSecret("us-east-1", "db", ptr("primary-db"), nil)
	f.putSecret("us-west-2", "db-replica", ptr("failover-db"), nil)
	f.putSecret("us-west-2", "api", ptr("failover-api"), nil)
	f.putSecret("us-east-1", "api", ptr("primary-api"), nil)
	f.putParam("us-east-1", "/p", "String", "primary-p")
	f.putParam("us-west-2", "/p", "String", "failover-p")
	c := parseClass(t, map[string]string{"region": "us-east-1", "failoverRegion": "us-west-2", "objects": `
- objectName: db
  objectType: secretsmanager
  objectAlias: db
  failoverObject:
    objectName: db-replica
- objectName: api
  objectType: secretsmanager
- objectName: /p
  objectType: ssmparameter
`})
	fe := &fetcher{t: t, p: awsprov.New(testOptions()), class: c, id: testIdentity()}
	files := fe.mustCycle()
	wantFile(t, files, "db", "primary-db", 0o644)
	wantFile(t, files, "_p", "primary-p", 0o644)
	if n := f.get(func() int { return f.regionCalls["us-west-2"] }); n != 0 {
		t.Errorf("failover region called %d times while the primary answered", n)
	}
	f.do(func() { f.failRegions["us-east-1"] = true })
	fe2 := &fetcher{t: t, p: awsprov.New(testOptions()), class: c, id: testIdentity()}
	files = fe2.mustCycle()
	wantFile(t, files, "db", "failover-db", 0o644)
	wantFile(t, files, "api", "failover-api", 0o644)
	wantFile(t, files, "_p", "failover-p", 0o644)

	// Both regions down: the message names both.
	f.do(func() { f.failRegions["us-west-2"] = true })
	_, err := fe2.cycle()
	if err == nil || !strings.Contains(err.Error(), "region us-west-2") || !strings.Contains(err.Error(), "region us-east-1") ||
		provider.ReasonOf(err) != provider.ReasonUnavailable {
		t.Errorf("both regions down: error %v, want Unavailable naming both regions", err)
	}

	// A secret missing in the primary region is a client error: no failover.
	f.do(func() {
		f.failRegions = map[string]bool{}
		delete(f.secrets["us-east-1"], "api")
		f.regionCalls = map[string]int{}
	})
	_, err = (&fetcher{t: t, p: awsprov.New(testOptions()), class: c, id: testIdentity()}).cycle()
	if provider.ReasonOf(err) != provider.ReasonNotFound {
		t.Errorf("missing in primary: error %v, want NotFound", err)
	}
	if f.get(func() int { return f.regionCalls["us-west-2"] }) != 0 {
		t.Errorf("failover region called after a client error in the primary region")
	}
}

// TestRegionFromEnvironmentReadOnce: a class without parameters.region
// uses the environment's region, read once per provider (the environment
// of a process does not change; reading it loads the shared configuration
// files), and a provider that could not find one still says what to set.
func TestRegionFromEnvironmentReadOnce(t *testing.T) {
	f := newFakeAWS(t)
	useFake(t, f)
	f.putSecret("us-east-1", "db", ptr("east-db"), nil)
	f.putSecret("eu-west-1", "db", ptr("west-db"), nil)
	c := parseClass(t, map[string]string{"objects": "- objectName: db\n  objectType: secretsmanager\n"})
	p := awsprov.New(testOptions())
	fetch := func() string {
		t.Helper()
		objs, err := p.Fetch(t.Context(), provider.Request{Class: c, Identity: testIdentity(), Permission: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		return string(objs[0].Files[0].Data)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	if got := fetch(); got != "east-db" {
		t.Fatalf("first fetch read %q, want the us-east-1 secret", got)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	if got := fetch(); got != "east-db" {
		t.Errorf("second fetch read %q: the region was read again", got)
	}
	p = awsprov.New(testOptions())
	if got := fetch(); got != "west-db" {
		t.Errorf("a new provider read %q, want the eu-west-1 secret", got)
	}
}
