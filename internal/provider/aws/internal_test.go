package aws

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

func TestSSMKey(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"hierarchical name":        {"/app/db", "app/db"},
		"flat name":                {"db", "db"},
		"name with version":        {"/app/db:3", "app/db"},
		"name with label":          {"/app/db:live", "app/db"},
		"ARN of hierarchical":      {"arn:aws:ssm:us-east-1:123456789012:parameter/app/db", "app/db"},
		"ARN with selector":        {"arn:aws:ssm:us-east-1:123456789012:parameter/app/db:2", "app/db"},
		"ARN in another partition": {"arn:aws-cn:ssm:cn-north-1:123456789012:parameter/x", "x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ssmKey(tc.in); got != tc.want {
				t.Errorf("ssmKey(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func ssmItem(name, version, label string) *item {
	return &item{obj: &spc.AWSObject{ObjectName: name, ObjectType: spc.AWSSSMParameter, ObjectVersion: version, ObjectVersionLabel: label}}
}

func TestSSMBatches(t *testing.T) {
	many := func(n int) []*item {
		var out []*item
		for i := 0; i < n; i++ {
			out = append(out, ssmItem(fmt.Sprintf("/p/%02d", i), "", ""))
		}
		return out
	}
	cases := map[string]struct {
		items []*item
		want  []string // batches as "name,name|name"
	}{
		"one":     {items: many(1), want: []string{"/p/00"}},
		"ten fit": {items: many(10), want: []string{"/p/00,/p/01,/p/02,/p/03,/p/04,/p/05,/p/06,/p/07,/p/08,/p/09"}},
		"eleven":  {items: many(11), want: []string{"/p/00,/p/01,/p/02,/p/03,/p/04,/p/05,/p/06,/p/07,/p/08,/p/09", "/p/10"}},
		"selectors": {
			items: []*item{ssmItem("/a", "", ""), ssmItem("/a", "2", ""), ssmItem("/a", "", "live"), ssmItem("/b", "", "")},
			want:  []string{"/a,/b", "/a:2", "/a:live"},
		},
		"identical requests share a slot": {
			items: []*item{ssmItem("/a", "1", ""), ssmItem("/a", "1", ""), ssmItem("/b", "", "")},
			want:  []string{"/a:1,/b"},
		},
		"name and ARN of one parameter are separated": {
			items: []*item{ssmItem("/a", "", ""), ssmItem("arn:aws:ssm:us-east-1:1:parameter/a", "", "")},
			want:  []string{"/a", "arn:aws:ssm:us-east-1:1:parameter/a"},
		},
		"version wins over label as upstream": {
			items: []*item{{obj: &spc.AWSObject{ObjectName: "/a", ObjectVersion: "4", ObjectVersionLabel: "x"}}},
			want:  []string{"/a:4"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, b := range ssmBatches(tc.items, false) {
				var names []string
				for _, r := range b {
					names = append(names, r.full)
				}
				got = append(got, strings.Join(names, ","))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("batches = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTargetFailover(t *testing.T) {
	o := &spc.AWSObject{ObjectName: "db", ObjectVersionLabel: "BLUE",
		FailoverObject: &spc.AWSFailoverObject{ObjectName: "db-west", ObjectVersionLabel: "GREEN"}}
	plain := &spc.AWSObject{ObjectName: "api"}
	cases := map[string]struct {
		obj      *spc.AWSObject
		failover bool
		want     target
	}{
		"primary":                   {o, false, target{name: "db", label: "BLUE"}},
		"failover object":           {o, true, target{name: "db-west", label: "GREEN"}},
		"failover without override": {plain, true, target{name: "api"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := (&item{obj: tc.obj}).target(tc.failover); got != tc.want {
				t.Errorf("target = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSameSecret(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
	cases := map[string]struct {
		req  string
		want bool
	}{
		"name":             {"prod/db", true},
		"full ARN":         {arn, true},
		"partial ARN":      {"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", true},
		"other name":       {"prod/dbx", false},
		"prefix of a name": {"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := sameSecret(tc.req, "prod/db", arn); got != tc.want {
				t.Errorf("sameSecret(%q) = %v, want %v", tc.req, got, tc.want)
			}
		})
	}
}

func httpErr(status int, code string, fault smithy.ErrorFault) error {
	return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: &smithy.GenericAPIError{Code: code, Message: "m", Fault: fault}}}}
}

func TestClassify(t *testing.T) {
	cases := map[string]struct {
		err    error
		reason provider.Reason
		fatal  bool
	}{
		"not found":                 {httpErr(400, "ResourceNotFoundException", smithy.FaultClient), provider.ReasonNotFound, true},
		"access denied":             {httpErr(400, "AccessDeniedException", smithy.FaultClient), provider.ReasonAccessDenied, true},
		"kms decryption":            {httpErr(400, "DecryptionFailure", smithy.FaultClient), provider.ReasonAccessDenied, true},
		"throttled":                 {httpErr(400, "ThrottlingException", smithy.FaultClient), provider.ReasonThrottled, false},
		"too many requests":         {httpErr(429, "Whatever", smithy.FaultUnknown), provider.ReasonThrottled, false},
		"server error":              {httpErr(500, "InternalServiceError", smithy.FaultServer), provider.ReasonUnavailable, false},
		"unknown 503":               {httpErr(503, "Odd", smithy.FaultUnknown), provider.ReasonUnavailable, false},
		"bad signature":             {httpErr(403, "InvalidSignatureException", smithy.FaultClient), provider.ReasonUnauthenticated, true},
		"unknown client fault":      {httpErr(400, "Odd", smithy.FaultClient), provider.ReasonInvalidConfig, true},
		"network":                   {errors.New("dial tcp: connection refused"), provider.ReasonUnavailable, false},
		"credentials":               {fmt.Errorf("x: %w", &credentialError{errors.New("no token")}), provider.ReasonUnauthenticated, true},
		"deleted secret":            {httpErr(400, "InvalidRequestException", smithy.FaultClient), provider.ReasonInvalidConfig, true},
		"parameter not found":       {httpErr(400, "ParameterNotFound", smithy.FaultClient), provider.ReasonNotFound, true},
		"ssm version not found":     {httpErr(400, "ParameterVersionNotFound", smithy.FaultClient), provider.ReasonNotFound, true},
		"kms disabled":              {httpErr(400, "KMSDisabledException", smithy.FaultClient), provider.ReasonAccessDenied, true},
		"expired token":             {httpErr(400, "ExpiredTokenException", smithy.FaultClient), provider.ReasonUnauthenticated, true},
		"service unavailable":       {httpErr(400, "ServiceUnavailableException", smithy.FaultClient), provider.ReasonUnavailable, false},
		"validation":                {httpErr(400, "ValidationException", smithy.FaultClient), provider.ReasonInvalidConfig, true},
		"slow down":                 {httpErr(503, "SlowDown", smithy.FaultServer), provider.ReasonThrottled, false},
		"unknown code, no response": {&smithy.GenericAPIError{Code: "Odd", Fault: smithy.FaultUnknown}, provider.ReasonUnavailable, false},
		"unknown code, client fault, no response": {&smithy.GenericAPIError{Code: "Odd", Fault: smithy.FaultClient}, provider.ReasonInvalidConfig, true},
	}
	// An unknown error code: the status decides, then the fault.
	for _, c := range []struct {
		status        int
		unknown       provider.Reason // with smithy.FaultUnknown
		client        provider.Reason // with smithy.FaultClient
		fatal, cfatal bool
	}{
		{200, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{304, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{400, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{401, provider.ReasonUnauthenticated, provider.ReasonUnauthenticated, true, true},
		{403, provider.ReasonAccessDenied, provider.ReasonAccessDenied, true, true},
		{404, provider.ReasonNotFound, provider.ReasonNotFound, true, true},
		{405, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{409, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{413, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{429, provider.ReasonThrottled, provider.ReasonThrottled, false, false},
		{499, provider.ReasonUnavailable, provider.ReasonInvalidConfig, false, true},
		{500, provider.ReasonUnavailable, provider.ReasonUnavailable, false, false},
		{501, provider.ReasonUnavailable, provider.ReasonUnavailable, false, false},
		{599, provider.ReasonUnavailable, provider.ReasonUnavailable, false, false},
		{600, provider.ReasonUnavailable, provider.ReasonUnavailable, false, false},
	} {
		cases[fmt.Sprintf("status %d", c.status)] = struct {
			err    error
			reason provider.Reason
			fatal  bool
		}{httpErr(c.status, "Odd", smithy.FaultUnknown), c.unknown, c.fatal}
		cases[fmt.Sprintf("status %d, client fault", c.status)] = struct {
			err    error
			reason provider.Reason
			fatal  bool
		}{httpErr(c.status, "Odd", smithy.FaultClient), c.client, c.cfatal}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := provider.Fail("ns/c", Name, "x", classify("GetSecretValue of secret \"x\"", tc.err))
			if r, fatal := e.Reason, fatalReason(e.Reason); r != tc.reason || fatal != tc.fatal {
				t.Errorf("classify = %s, fatal %v; want %s, fatal %v", r, fatal, tc.reason, tc.fatal)
			}
			if msg := e.Err.Error(); !strings.HasPrefix(msg, "GetSecretValue of secret \"x\": ") {
				t.Errorf("message %q does not name the call", msg)
			}
		})
	}
}

func TestDeserializationErrorHidesBody(t *testing.T) {
	raw := &smithy.OperationError{Err: &smithy.DeserializationError{Err: errors.New(`invalid character in "TOPSECRET"`), Snapshot: []byte("TOPSECRET")}}
	ce := newCallError("us-east-1", "GetSecretValue of secret \"x\"", raw)
	if strings.Contains(ce.Error(), "TOPSECRET") || !strings.Contains(ce.Error(), "could not be decoded") {
		t.Errorf("message = %q", ce.Error())
	}
}

func TestBatchUnsupported(t *testing.T) {
	cases := map[string]struct {
		err  error
		want bool
	}{
		"denied by policy":  {httpErr(400, "AccessDeniedException", smithy.FaultClient), true},
		"unknown operation": {httpErr(400, "UnknownOperationException", smithy.FaultClient), true},
		"not implemented":   {httpErr(501, "Odd", smithy.FaultServer), true},
		"throttled":         {httpErr(400, "ThrottlingException", smithy.FaultClient), false},
		"network":           {errors.New("connection reset"), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := batchUnsupported(tc.err); got != tc.want {
				t.Errorf("batchUnsupported = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPodIdentityEndpoints(t *testing.T) {
	o := Options{PodIdentityIPv4URL: PodIdentityIPv4URL, PodIdentityIPv6URL: PodIdentityIPv6URL}
	cases := map[string]struct {
		pref, fullURI string
		want          string
		err           string
	}{
		"auto":                 {pref: "auto", want: PodIdentityIPv4URL + " " + PodIdentityIPv6URL},
		"empty is auto":        {pref: "", want: PodIdentityIPv4URL + " " + PodIdentityIPv6URL},
		"ipv4":                 {pref: "ipv4", want: PodIdentityIPv4URL},
		"ipv6":                 {pref: "ipv6", want: PodIdentityIPv6URL},
		"override":             {pref: "ipv6", fullURI: "http://127.0.0.1:2703/creds", want: "http://127.0.0.1:2703/creds"},
		"override localhost":   {fullURI: "http://localhost:80/c", want: "http://localhost:80/c"},
		"override IPv6 agent":  {fullURI: "http://[fd00:ec2::23]/v1/credentials", want: "http://[fd00:ec2::23]/v1/credentials"},
		"override https":       {fullURI: "https://creds.example.com/v1", want: "https://creds.example.com/v1"},
		"override remote http": {fullURI: "http://creds.example.com/v1", err: "only allowed to a loopback address"},
		"override file":        {fullURI: "file:///etc/passwd", err: "not an absolute URL"},
		"override ftp":         {fullURI: "ftp://127.0.0.1/x", err: "scheme must be http or https"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envContainerFullURI, tc.fullURI)
			got, err := podIdentityEndpoints(tc.pref, o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Errorf("endpoints = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestSessionName(t *testing.T) {
	cases := map[string]struct {
		pod  identity.Pod
		want string
	}{
		"pod":      {identity.Pod{Namespace: "team-a", Name: "web-0"}, "ssi-team-a.web-0"},
		"no pod":   {identity.Pod{}, "ssi"},
		"too long": {identity.Pod{Namespace: strings.Repeat("n", 40), Name: strings.Repeat("p", 40)}, ("ssi-" + strings.Repeat("n", 40) + "." + strings.Repeat("p", 40))[:64]},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := sessionName(tc.pod); got != tc.want {
				t.Errorf("sessionName = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExtract(t *testing.T) {
	const secret = "S3CRET-VALUE"
	obj := func(paths ...string) *spc.AWSObject {
		o := &spc.AWSObject{ObjectName: "db"}
		for i, p := range paths {
			o.JMESPath = append(o.JMESPath, spc.AWSJMESPath{Path: p, ObjectAlias: fmt.Sprintf("a%d", i)})
		}
		return o
	}
	value := []byte(`{"user":"` + secret + `","my-key":"hyphen","n":1,"list":["x"],"obj":{"k":"v"},"t":true}`)
	cases := map[string]struct {
		obj   *spc.AWSObject
		value []byte
		want  []string
		err   string
	}{
		"no jmesPath":      {obj: obj(), value: []byte("not json"), want: nil},
		"fields":           {obj: obj("user", `"my-key"`, "obj.k", "list[0]"), value: value, want: []string{secret, "hyphen", "v", "x"}},
		"not JSON":         {obj: obj("user"), value: []byte(secret), err: `value of "db" is not valid JSON`},
		"number":           {obj: obj("n"), value: value, err: "yields a JSON number"},
		"object":           {obj: obj("obj"), value: value, err: "yields a JSON object"},
		"array":            {obj: obj("list"), value: value, err: "yields a JSON array"},
		"boolean":          {obj: obj("t"), value: value, err: "yields a JSON boolean"},
		"missing":          {obj: obj("nope"), value: value, err: `JMES path "nope" for objectAlias "a0" does not point to a value`},
		"syntax":           {obj: obj("user["), value: value, err: `invalid JMES path "user["`},
		"runtime mismatch": {obj: obj("abs(user)"), value: value, err: "could not be evaluated"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := extract(tc.obj, tc.value)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error carries the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, b := range got {
				s = append(s, string(b))
			}
			if strings.Join(s, "|") != strings.Join(tc.want, "|") {
				t.Errorf("extract = %q, want %q", s, tc.want)
			}
		})
	}
}

// TestCodeError: an error code in a successful answer (BatchGetSecretValue
// errors, GetParameters invalid names) is classified as that code would
// be, an unknown code as InvalidConfig.
func TestCodeError(t *testing.T) {
	cases := map[string]struct {
		code   string
		reason provider.Reason
		fatal  bool
	}{
		"not found":   {"ResourceNotFoundException", provider.ReasonNotFound, true},
		"decryption":  {"DecryptionFailure", provider.ReasonAccessDenied, true},
		"throttled":   {"ThrottlingException", provider.ReasonThrottled, false},
		"internal":    {"InternalServiceError", provider.ReasonUnavailable, false},
		"bad request": {"InvalidParameterException", provider.ReasonInvalidConfig, true},
		"unknown":     {"Odd", provider.ReasonInvalidConfig, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ce := codeError("us-east-1", `BatchGetSecretValue of secret "x"`, tc.code, "the message")
			if ce.reason != tc.reason || ce.fatal != tc.fatal {
				t.Errorf("reason %s, fatal %v; want %s, fatal %v", ce.reason, ce.fatal, tc.reason, tc.fatal)
			}
			want := `region us-east-1: BatchGetSecretValue of secret "x": api error ` + tc.code + ": the message"
			if ce.Error() != want {
				t.Errorf("message %q, want %q", ce.Error(), want)
			}
		})
	}
}

// TestJMESPathAdmissionAgreesWithFetch: admission (spc.ParseSpec) and the
// fetch (extract) decide a jmesPath expression's syntax with one function,
// so every expression gets the same verdict from both: admitted ones
// evaluate, refused ones are the ones the fetch could not compile.
func TestJMESPathAdmissionAgreesWithFetch(t *testing.T) {
	value := []byte(`{"user": "u", "my-key": "k", "a": {"b": "c"}, "l": ["x"]}`)
	for _, expr := range []string{"user", `"my-key"`, "a.b", "l[0]", "a || user", "`\"lit\"`", "@.user",
		".user", "a.[", "", "user[", "[?", "a..b", "`", "&", "user |"} {
		t.Run(expr, func(t *testing.T) {
			class, admitErr := spc.ParseSpec("ns", "c", "aws", map[string]string{"region": "us-east-1",
				"objects": fmt.Sprintf("- {objectName: db, objectType: secretsmanager, jmesPath: [{path: %q, objectAlias: x}]}", expr)})
			o := &spc.AWSObject{ObjectName: "db", JMESPath: []spc.AWSJMESPath{{Path: expr, ObjectAlias: "x"}}}
			if admitErr == nil {
				o = &class.AWS.Objects[0]
			}
			_, fetchErr := extract(o, value)
			syntax := fetchErr != nil && strings.Contains(fetchErr.Error(), "invalid JMES path")
			if expr == "" {
				// An empty path is refused as missing before it is compiled.
				if admitErr == nil || !strings.Contains(admitErr.Error(), "jmesPath[0].path: is required") {
					t.Fatalf("empty path: admission %v", admitErr)
				}
				return
			}
			if (admitErr != nil) != syntax {
				t.Fatalf("admission %v, fetch %v: they disagree", admitErr, fetchErr)
			}
			if admitErr != nil && !strings.Contains(admitErr.Error(), "jmesPath[0].path") {
				t.Errorf("denial %v does not name the field", admitErr)
			}
		})
	}
}
