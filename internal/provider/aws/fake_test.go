package aws_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// fakeAWS is an in-process Secrets Manager + SSM Parameter Store + STS that
// speaks the real wire protocols (AWS JSON 1.1 selected by X-Amz-Target;
// STS query protocol with XML answers) over real HTTP, and checks what the
// real services check before answering: a well-formed SigV4 Authorization
// header whose credential scope names the service and a region, made with
// a secret key the fake issued, and the session token that goes with it.
type fakeAWS struct {
	t   testing.TB
	srv *httptest.Server

	mu sync.Mutex
	// keys are the accepted access keys.
	keys map[string]fakeKey
	// secrets and params are per region.
	secrets map[string]map[string]*fakeSecret
	params  map[string]map[string]*fakeParam
	// calls counts operations ("secretsmanager.GetSecretValue", "sts.AssumeRoleWithWebIdentity").
	calls map[string]int
	// regionCalls counts operations per region.
	regionCalls map[string]int
	// signedWith counts requests per access key.
	signedWith map[string]int
	// sent counts the response bytes (and secret values) sent.
	sent providertest.Bytes

	// denyBatch answers BatchGetSecretValue with AccessDeniedException, as
	// for the seed guide's IAM policy.
	denyBatch bool
	// deny answers any read of these names with AccessDeniedException.
	deny map[string]bool
	// failOps answers these operations with the given error code.
	failOps map[string]string
	// failRegions answers every call in these regions with 503.
	failRegions map[string]bool

	// assume verifies a web identity token and returns the subject; nil
	// rejects every AssumeRoleWithWebIdentity.
	assume func(ctx context.Context, token string) (subject string, err error)
	// roles records the RoleArn of every AssumeRoleWithWebIdentity.
	roles []string
}

type fakeKey struct{ secret, session string }

type fakeSecret struct {
	name, arn string
	versions  map[string]*fakeVersion
	created   map[string]int
	seq       int
}

type fakeVersion struct {
	str    *string
	bin    []byte
	stages []string
}

type fakeParam struct {
	name, typ string
	values    []string
	labels    map[string]int // label → version
}

const fakeAccount = "123456789012"

func newFakeAWS(t testing.TB) *fakeAWS {
	f := &fakeAWS{
		t:           t,
		keys:        map[string]fakeKey{},
		secrets:     map[string]map[string]*fakeSecret{},
		params:      map[string]map[string]*fakeParam{},
		calls:       map[string]int{},
		regionCalls: map[string]int{},
		signedWith:  map[string]int{},
		deny:        map[string]bool{},
		failOps:     map[string]string{},
		failRegions: map[string]bool{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAWS) URL() string { return f.srv.URL }

// addKey accepts an access key.
func (f *fakeAWS) addKey(id, secret, session string) {
	f.mu.Lock()
	f.keys[id] = fakeKey{secret: secret, session: session}
	f.mu.Unlock()
}

// putSecret adds a version of a secret (created when new) and moves
// AWSCURRENT to it, AWSPREVIOUS to the version that had it. It returns the
// version ID.
func (f *fakeAWS) putSecret(region, name string, str *string, bin []byte, extraStages ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets[region] == nil {
		f.secrets[region] = map[string]*fakeSecret{}
	}
	s := f.secrets[region][name]
	if s == nil {
		s = &fakeSecret{name: name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", region, fakeAccount, name, randHex(3)),
			versions: map[string]*fakeVersion{}, created: map[string]int{}}
		f.secrets[region][name] = s
	}
	s.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", s.seq, s.seq)
	for _, v := range s.versions {
		v.stages = without(v.stages, "AWSPREVIOUS")
		if has(v.stages, "AWSCURRENT") {
			v.stages = append(without(v.stages, "AWSCURRENT"), "AWSPREVIOUS")
		}
		for _, st := range extraStages {
			v.stages = without(v.stages, st)
		}
	}
	s.versions[id] = &fakeVersion{str: str, bin: bin, stages: append([]string{"AWSCURRENT"}, extraStages...)}
	s.created[id] = s.seq
	return id
}

// putParam adds a version of a parameter and returns its number.
func (f *fakeAWS) putParam(region, name, typ, value string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.params[region] == nil {
		f.params[region] = map[string]*fakeParam{}
	}
	p := f.params[region][name]
	if p == nil {
		p = &fakeParam{name: name, typ: typ, labels: map[string]int{}}
		f.params[region][name] = p
	}
	p.values = append(p.values, value)
	return len(p.values)
}

func (f *fakeAWS) labelParam(region, name, label string, version int) {
	f.mu.Lock()
	f.params[region][name].labels[label] = version
	f.mu.Unlock()
}

// do runs a change of the fake's state under its lock.
func (f *fakeAWS) do(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
}

// get reads the fake's state under its lock.
func (f *fakeAWS) get(read func() int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return read()
}

// counts returns and resets the operation counts.
func (f *fakeAWS) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = map[string]int{}
	return c
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	w = f.sent.Writer(w)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.serveSTS(w, r, body)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	var service string
	switch {
	case strings.HasPrefix(target, "secretsmanager."):
		service = "secretsmanager"
	case strings.HasPrefix(target, "AmazonSSM."):
		service = "ssm"
	default:
		jsonError(w, 400, "UnknownOperationException", "unknown target "+target)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		jsonError(w, 400, "SerializationException", "content type "+ct)
		return
	}
	region, key, err := f.verifySigV4(r, body, service)
	if err != nil {
		jsonError(w, 403, "InvalidSignatureException", err.Error())
		return
	}
	op := target[strings.IndexByte(target, '.')+1:]
	f.mu.Lock()
	f.calls[service+"."+op]++
	f.regionCalls[region]++
	f.signedWith[key]++
	failRegion := f.failRegions[region]
	failCode := f.failOps[service+"."+op]
	f.mu.Unlock()
	if failRegion {
		jsonError(w, 503, "ServiceUnavailable", "region "+region+" is unavailable")
		return
	}
	if failCode != "" {
		status := 400
		if failCode == "InternalServiceError" {
			status = 500
		}
		jsonError(w, status, failCode, "injected "+failCode)
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		jsonError(w, 400, "SerializationException", "body is not JSON")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch service + "." + op {
	case "secretsmanager.GetSecretValue":
		f.getSecretValue(w, region, in)
	case "secretsmanager.DescribeSecret":
		f.describeSecret(w, region, in)
	case "secretsmanager.BatchGetSecretValue":
		f.batchGetSecretValue(w, region, in)
	case "ssm.GetParameters":
		f.getParameters(w, region, in)
	default:
		jsonError(w, 400, "UnknownOperationException", "operation "+op+" is not faked")
	}
}

var (
	authRE       = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)
	knownRegions = map[string]bool{"us-east-1": true, "us-west-2": true, "eu-west-1": true, "eu-central-1": true}
)

// verifySigV4 checks the Authorization header independently of the SDK:
// its shape, the credential scope (date, region, service), the signed
// headers (host, x-amz-date, and the session token when the key has one),
// and the signature itself, recomputed with the key's secret.
func (f *fakeAWS) verifySigV4(r *http.Request, body []byte, service string) (region, key string, err error) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", "", fmt.Errorf("malformed or missing SigV4 Authorization header")
	}
	akid, date, region, svc, signed, sig := m[1], m[2], m[3], m[4], m[5], m[6]
	if svc != service {
		return "", "", fmt.Errorf("credential scope service %q, want %q", svc, service)
	}
	if !knownRegions[region] {
		return "", "", fmt.Errorf("credential scope region %q is not a region", region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	ts, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || ts.Format("20060102") != date {
		return "", "", fmt.Errorf("X-Amz-Date %q does not match the scope date %s", amzDate, date)
	}
	if d := time.Since(ts); d > 5*time.Minute || d < -5*time.Minute {
		return "", "", fmt.Errorf("request time too skewed")
	}
	f.mu.Lock()
	k, ok := f.keys[akid]
	f.mu.Unlock()
	if !ok {
		return "", "", fmt.Errorf("unknown access key")
	}
	names := strings.Split(signed, ";")
	for _, must := range []string{"host", "x-amz-date"} {
		if !has(names, must) {
			return "", "", fmt.Errorf("header %s is not signed", must)
		}
	}
	if k.session != "" {
		if !has(names, "x-amz-security-token") || r.Header.Get("X-Amz-Security-Token") != k.session {
			return "", "", fmt.Errorf("session token missing, unsigned or wrong")
		}
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n" + r.URL.EscapedPath() + "\n" + r.URL.RawQuery + "\n")
	for _, h := range names {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			vals := r.Header.Values(h)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		canon.WriteString(h + ":" + v + "\n")
	}
	bodyHash := sha256.Sum256(body)
	canon.WriteString("\n" + signed + "\n" + hex.EncodeToString(bodyHash[:]))
	canonHash := sha256.Sum256([]byte(canon.String()))
	scope := date + "/" + region + "/" + svc + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(canonHash[:])
	kd := hmacSHA256([]byte("AWS4"+k.secret), date)
	kd = hmacSHA256(kd, region)
	kd = hmacSHA256(kd, svc)
	kd = hmacSHA256(kd, "aws4_request")
	if want := hex.EncodeToString(hmacSHA256(kd, toSign)); !hmac.Equal([]byte(want), []byte(sig)) {
		return "", "", fmt.Errorf("signature does not match")
	}
	return region, akid, nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func (f *fakeAWS) findSecret(region, id string) *fakeSecret {
	for _, s := range f.secrets[region] {
		if id == s.name || id == s.arn || (strings.HasPrefix(id, "arn:") && strings.HasPrefix(s.arn, id+"-")) {
			return s
		}
	}
	return nil
}

func (f *fakeAWS) secretValue(region, id, versionID, stage string) (map[string]any, string, string) {
	s := f.findSecret(region, id)
	if s == nil {
		return nil, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."
	}
	if f.deny[s.name] {
		return nil, "AccessDeniedException", "User is not authorized to perform secretsmanager:GetSecretValue on resource " + s.name
	}
	if versionID == "" {
		if stage == "" {
			stage = "AWSCURRENT"
		}
		for id, v := range s.versions {
			if has(v.stages, stage) {
				versionID = id
			}
		}
		if versionID == "" {
			return nil, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + stage
		}
	}
	v := s.versions[versionID]
	if v == nil {
		return nil, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: " + versionID
	}
	if stage != "" && !has(v.stages, stage) {
		return nil, "InvalidRequestException", "You provided a VersionStage that is not associated to the provided VersionId."
	}
	out := map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": versionID, "VersionStages": v.stages,
		"CreatedDate": float64(1700000000 + s.created[versionID])}
	if v.str != nil {
		out["SecretString"] = *v.str
	} else {
		out["SecretBinary"] = base64.StdEncoding.EncodeToString(v.bin)
	}
	return out, "", ""
}

func str(in map[string]any, k string) string { s, _ := in[k].(string); return s }

func (f *fakeAWS) getSecretValue(w http.ResponseWriter, region string, in map[string]any) {
	out, code, msg := f.secretValue(region, str(in, "SecretId"), str(in, "VersionId"), str(in, "VersionStage"))
	if code != "" {
		jsonError(w, 400, code, msg)
		return
	}
	jsonOut(w, out)
}

func (f *fakeAWS) describeSecret(w http.ResponseWriter, region string, in map[string]any) {
	s := f.findSecret(region, str(in, "SecretId"))
	if s == nil {
		jsonError(w, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	if f.deny[s.name] {
		jsonError(w, 400, "AccessDeniedException", "User is not authorized to perform secretsmanager:DescribeSecret on resource "+s.name)
		return
	}
	stages := map[string][]string{}
	for id, v := range s.versions {
		if len(v.stages) > 0 {
			stages[id] = v.stages
		}
	}
	jsonOut(w, map[string]any{"ARN": s.arn, "Name": s.name, "VersionIdsToStages": stages})
}

func (f *fakeAWS) batchGetSecretValue(w http.ResponseWriter, region string, in map[string]any) {
	if f.denyBatch {
		jsonError(w, 400, "AccessDeniedException", "User is not authorized to perform: secretsmanager:BatchGetSecretValue because no identity-based policy allows the secretsmanager:BatchGetSecretValue action")
		return
	}
	ids, _ := in["SecretIdList"].([]any)
	if len(ids) == 0 || len(ids) > 20 {
		jsonError(w, 400, "ValidationException", fmt.Sprintf("SecretIdList must have 1 to 20 members, got %d", len(ids)))
		return
	}
	values, errs := []any{}, []any{}
	for _, raw := range ids {
		id, _ := raw.(string)
		out, code, msg := f.secretValue(region, id, "", "")
		if code != "" {
			errs = append(errs, map[string]any{"SecretId": id, "ErrorCode": code, "Message": msg})
			continue
		}
		values = append(values, out)
	}
	jsonOut(w, map[string]any{"SecretValues": values, "Errors": errs})
}

func (f *fakeAWS) getParameters(w http.ResponseWriter, region string, in map[string]any) {
	names, _ := in["Names"].([]any)
	if len(names) == 0 || len(names) > 10 {
		jsonError(w, 400, "ValidationException", fmt.Sprintf("Names must have 1 to 10 members, got %d", len(names)))
		return
	}
	if dec, _ := in["WithDecryption"].(bool); !dec {
		jsonError(w, 400, "ValidationException", "this fake insists on WithDecryption")
		return
	}
	params, invalid := []any{}, []any{}
	for _, raw := range names {
		full, _ := raw.(string)
		name, sel := full, ""
		prefix := fmt.Sprintf("arn:aws:ssm:%s:%s:parameter", region, fakeAccount)
		if strings.HasPrefix(full, prefix) {
			name = full[len(prefix):]
			if !strings.HasPrefix(name, "/") {
				name = "/" + name
			}
		}
		if i := strings.IndexByte(name, ':'); i >= 0 {
			name, sel = name[:i], name[i+1:]
		}
		p := f.params[region][name]
		if p == nil && strings.HasPrefix(full, "arn:") {
			p = f.params[region][strings.TrimPrefix(name, "/")]
		}
		if p == nil {
			invalid = append(invalid, full)
			continue
		}
		if f.deny[p.name] {
			jsonError(w, 400, "AccessDeniedException", "User is not authorized to perform ssm:GetParameters on resource "+p.name)
			return
		}
		v := len(p.values)
		if sel != "" {
			if n, err := strconv.Atoi(sel); err == nil {
				v = n
			} else if lv, ok := p.labels[sel]; ok {
				v = lv
			} else {
				v = 0
			}
		}
		if v < 1 || v > len(p.values) {
			invalid = append(invalid, full)
			continue
		}
		out := map[string]any{"Name": p.name, "Type": p.typ, "Value": p.values[v-1], "Version": v,
			"ARN": fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", region, fakeAccount, strings.TrimPrefix(p.name, "/")), "DataType": "text"}
		if sel != "" {
			out["Selector"] = ":" + sel
		}
		params = append(params, out)
	}
	jsonOut(w, map[string]any{"Parameters": params, "InvalidParameters": invalid})
}

// serveSTS answers AssumeRoleWithWebIdentity (query protocol, XML).
func (f *fakeAWS) serveSTS(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if err := r.ParseForm(); err != nil {
		stsError(w, 400, "MalformedInput", "form")
		return
	}
	if a := r.PostForm.Get("Action"); a != "AssumeRoleWithWebIdentity" || r.PostForm.Get("Version") != "2011-06-15" {
		stsError(w, 400, "InvalidAction", "unsupported action "+a)
		return
	}
	f.mu.Lock()
	f.calls["sts.AssumeRoleWithWebIdentity"]++
	f.roles = append(f.roles, r.PostForm.Get("RoleArn"))
	assume := f.assume
	f.mu.Unlock()
	role, session, token := r.PostForm.Get("RoleArn"), r.PostForm.Get("RoleSessionName"), r.PostForm.Get("WebIdentityToken")
	if role == "" || session == "" || token == "" {
		stsError(w, 400, "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required")
		return
	}
	if assume == nil {
		stsError(w, 400, "InvalidIdentityToken", "no identity provider configured")
		return
	}
	subject, err := assume(r.Context(), token)
	if err != nil {
		stsError(w, 400, "InvalidIdentityToken", "Couldn't verify the web identity token: "+err.Error())
		return
	}
	akid, secret, sess := "ASIA"+strings.ToUpper(randHex(8)), randHex(20), randHex(32)
	f.addKey(akid, secret, sess)
	type credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type result struct {
		Subject     string      `xml:"SubjectFromWebIdentityToken"`
		Audience    string      `xml:"Audience"`
		Credentials credentials `xml:"Credentials"`
		RoleArn     string      `xml:"AssumedRoleUser>Arn"`
		RoleID      string      `xml:"AssumedRoleUser>AssumedRoleId"`
		Provider    string      `xml:"Provider"`
	}
	type response struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
		Result    result   `xml:"AssumeRoleWithWebIdentityResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	out := response{Result: result{
		Subject: subject, Audience: "sts.amazonaws.com",
		Credentials: credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: sess,
			Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
		RoleArn: role + "/" + session, RoleID: "AROAFAKE:" + session, Provider: "kubernetes",
	}, RequestID: randHex(8)}
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(out)
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type resp struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(resp{Error: errBody{Type: "Sender", Code: code, Message: msg}, RequestID: randHex(8)})
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

func jsonOut(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

// fakePodIdentityAgent is an EKS Pod Identity agent: a container
// credentials endpoint that hands out credentials to a caller presenting
// the expected token in the Authorization header.
type fakePodIdentityAgent struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls int
	// check verifies the Authorization header value.
	check func(ctx context.Context, token string) error
	aws   *fakeAWS
}

// newFakePodIdentityAgent listens on network ("tcp4" or "tcp6") loopback.
// Without IPv6 loopback a tcp6 agent fails the test under CI and skips it
// elsewhere (testenv.RequireCapability).
func newFakePodIdentityAgent(t testing.TB, network string, f *fakeAWS, check func(context.Context, string) error) *fakePodIdentityAgent {
	t.Helper()
	a := &fakePodIdentityAgent{check: check, aws: f}
	var l net.Listener
	var err error
	switch network {
	case "tcp4":
		if l, err = net.Listen(network, "127.0.0.1:0"); err != nil {
			t.Fatalf("listen on IPv4 loopback: %v", err)
		}
	case "tcp6":
		l, err = net.Listen(network, "[::1]:0")
		if err != nil {
			err = fmt.Errorf("listen on [::1]: %w (enable IPv6 on lo: sysctl -w net.ipv6.conf.lo.disable_ipv6=0; in Docker: --sysctl net.ipv6.conf.lo.disable_ipv6=0)", err)
		}
		testenv.RequireCapability(t, "IPv6 loopback", err)
	default:
		t.Fatalf("network %q: want tcp4 or tcp6", network)
	}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.Listener = l
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakePodIdentityAgent) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *fakePodIdentityAgent) URL() string { return a.srv.URL + "/v1/credentials" }

func (a *fakePodIdentityAgent) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls++
	a.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/v1/credentials" {
		http.Error(w, `{"code":"NotFound","message":"no such path"}`, http.StatusNotFound)
		return
	}
	tok := r.Header.Get("Authorization")
	if tok == "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"code":"InvalidToken","message":"missing Authorization header"}`)
		return
	}
	if err := a.check(r.Context(), tok); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "AccessDeniedException", "message": "token rejected: " + err.Error()})
		return
	}
	akid, secret, sess := "ASIA"+strings.ToUpper(randHex(8)), randHex(20), randHex(32)
	a.aws.addKey(akid, secret, sess)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId": akid, "SecretAccessKey": secret, "Token": sess,
		"AccountId":  fakeAccount,
		"Expiration": time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
	})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// sortedCounts formats operation counts for logs.
func sortedCounts(c map[string]int) string {
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c[k]))
	}
	return strings.Join(parts, " ")
}
