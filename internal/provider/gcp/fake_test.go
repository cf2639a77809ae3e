package gcp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// The fake is a Secret Manager gRPC server built on the generated service
// interface (over TLS, with the bearer token checked per call and per
// secret), a Security Token Service that exchanges only real
// service-account tokens of the test API server with the configured
// audience, an IAM Credentials generateAccessToken endpoint that checks
// who may impersonate whom, and a GCE metadata server.

const (
	projectID     = "my-project"
	projectNumber = "123456789012"
	wipResource   = "projects/123456789012/locations/global/workloadIdentityPools/k8s-pool/providers/test-cluster"
	gsaEmail      = "app@my-project.iam.gserviceaccount.com"
	nodeEmail     = "node@my-project.iam.gserviceaccount.com"
)

type smVersion struct {
	payload []byte
	state   secretmanagerpb.SecretVersion_State
}

type smSecret struct {
	versions []*smVersion // version n is versions[n-1]
	aliases  map[string]int
}

type fakeGCP struct {
	t        *testing.T
	reviewer *providertest.Reviewer
	calls    providertest.Counter
	// sent counts the Secret Manager response bytes (and secret values)
	// sent, as serialized messages.
	sent providertest.Bytes

	grpcLis  net.Listener
	grpcSrv  *grpc.Server
	https    *httptest.Server // STS and IAM Credentials
	metadata *httptest.Server

	mu sync.Mutex
	// secrets by canonical name projects/<number>[/locations/<loc>]/secrets/<s>.
	secrets map[string]*smSecret
	tokens  map[string]string // access token -> principal
	// accessors may access payloads; viewers may read version metadata.
	accessors, viewers map[string]bool
	denied, throttled  map[string]bool // by secret id (last segment)
	// federated maps a Kubernetes subject to its federated principal.
	federated map[string]string
	// tokenCreators: service account email -> principals allowed to impersonate it.
	tokenCreators map[string]map[string]bool
	// saKeys are the public keys of service-account keys by client email
	// (the JWT-bearer grant of a key.json).
	saKeys map[string]*rsa.PublicKey
	// metadataPrincipal is who the metadata server answers as.
	metadataEmail string
	// checkAuthority makes the server require the regional endpoint for
	// regional secrets and the global one for global secrets.
	checkAuthority bool
	// lastAuthority is the :authority of the last Secret Manager call.
	authorities []string
	// pm is the Parameter Manager REST API, served on the same HTTPS
	// listener under its host names (pm_fake_test.go).
	pm *fakePM
}

func newFakeGCP(t *testing.T, ca *providertest.CA, reviewer *providertest.Reviewer) *fakeGCP {
	f := &fakeGCP{
		t: t, reviewer: reviewer,
		secrets: map[string]*smSecret{}, tokens: map[string]string{},
		accessors: map[string]bool{}, viewers: map[string]bool{},
		denied: map[string]bool{}, throttled: map[string]bool{}, federated: map[string]string{},
		tokenCreators: map[string]map[string]bool{}, saKeys: map[string]*rsa.PublicKey{}, metadataEmail: gsaEmail, checkAuthority: true,
	}
	f.pm = newFakePM(f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.grpcLis = lis
	f.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(ca.ServerTLS(t, "secretmanager.googleapis.com", "secretmanager.us-east1.rep.googleapis.com"))),
		grpc.UnaryInterceptor(f.authenticate),
	)
	secretmanagerpb.RegisterSecretManagerServiceServer(f.grpcSrv, &smServer{f: f})
	go func() { _ = f.grpcSrv.Serve(lis) }()
	t.Cleanup(f.grpcSrv.Stop)

	f.https = httptest.NewUnstartedServer(http.HandlerFunc(f.serveHTTPS))
	f.https.TLS = ca.ServerTLS(t, "sts.googleapis.com", "iamcredentials.googleapis.com", "oauth2.googleapis.com",
		"parametermanager.googleapis.com", "parametermanager.us-east1.rep.googleapis.com", "parametermanager.europe-west4.rep.googleapis.com")
	f.https.StartTLS()
	t.Cleanup(f.https.Close)
	f.metadata = httptest.NewServer(http.HandlerFunc(f.serveMetadata))
	t.Cleanup(f.metadata.Close)
	return f
}

func (f *fakeGCP) grpcAddr() string  { return f.grpcLis.Addr().String() }
func (f *fakeGCP) httpsAddr() string { return f.https.Listener.Addr().String() }

func (f *fakeGCP) mint(principal, prefix string) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := prefix + base64.RawURLEncoding.EncodeToString(b)
	f.mu.Lock()
	f.tokens[tok] = principal
	f.mu.Unlock()
	return tok
}

// addVersion adds a version to a secret (created on first use) and
// returns its canonical version name.
func (f *fakeGCP) addVersion(name string, payload []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := canonical(name)
	s := f.secrets[key]
	if s == nil {
		s = &smSecret{aliases: map[string]int{}}
		f.secrets[key] = s
	}
	s.versions = append(s.versions, &smVersion{payload: payload, state: secretmanagerpb.SecretVersion_ENABLED})
	return fmt.Sprintf("%s/versions/%d", key, len(s.versions))
}

func (f *fakeGCP) setState(name string, n int, st secretmanagerpb.SecretVersion_State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[canonical(name)].versions[n-1].state = st
}

func (f *fakeGCP) alias(name, alias string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[canonical(name)].aliases[alias] = n
}

// canonical replaces a project id by its number.
func canonical(name string) string {
	return strings.Replace(name, "projects/"+projectID+"/", "projects/"+projectNumber+"/", 1)
}

var versionName = regexp.MustCompile(`^(projects/[^/]+(?:/locations/([^/]+))?/secrets/([^/]+))/versions/([^/]+)$`)

// ---- Secret Manager ----

func (f *fakeGCP) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	f.calls.Add("sm " + method)
	var auth, authority string
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	if v := md.Get(":authority"); len(v) > 0 {
		authority = v[0]
	}
	f.mu.Lock()
	f.authorities = append(f.authorities, authority)
	principal, ok := f.tokens[strings.TrimPrefix(auth, "Bearer ")]
	f.mu.Unlock()
	if !strings.HasPrefix(auth, "Bearer ") || !ok {
		return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token.")
	}
	if f.checkAuthority {
		name := ""
		switch r := req.(type) {
		case *secretmanagerpb.AccessSecretVersionRequest:
			name = r.GetName()
		case *secretmanagerpb.GetSecretVersionRequest:
			name = r.GetName()
		}
		want := "secretmanager.googleapis.com"
		if m := versionName.FindStringSubmatch(name); m != nil && m[2] != "" {
			want = "secretmanager." + m[2] + ".rep.googleapis.com"
		}
		if strings.TrimSuffix(authority, ":443") != want {
			return nil, status.Errorf(codes.InvalidArgument, "%s must be accessed through %s, not %s", name, want, authority)
		}
	}
	resp, err := h(context.WithValue(ctx, principalKey{}, principal), req)
	if m, ok := resp.(proto.Message); ok && err == nil {
		if b, merr := proto.Marshal(m); merr == nil {
			f.sent.Record(b)
		}
	}
	return resp, err
}

type principalKey struct{}

type smServer struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	f *fakeGCP
}

// resolve finds a version by name (number, alias or latest).
func (f *fakeGCP) resolve(ctx context.Context, name, perm string) (string, *smVersion, error) {
	m := versionName.FindStringSubmatch(name)
	if m == nil {
		return "", nil, status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: %s", name)
	}
	principal, _ := ctx.Value(principalKey{}).(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	allowed := f.accessors[principal]
	if perm == "secretmanager.versions.get" {
		allowed = f.viewers[principal]
	}
	if !allowed || f.denied[m[3]] {
		return "", nil, status.Errorf(codes.PermissionDenied, "Permission '%s' denied for resource '%s' (or it may not exist).", perm, name)
	}
	if f.throttled[m[3]] {
		return "", nil, status.Error(codes.ResourceExhausted, "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project'.")
	}
	key := canonical(m[1])
	s := f.secrets[key]
	if s == nil || len(s.versions) == 0 {
		return "", nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", key)
	}
	n := 0
	switch v := m[4]; v {
	case "latest":
		for i := len(s.versions); i >= 1; i-- {
			if s.versions[i-1].state == secretmanagerpb.SecretVersion_ENABLED {
				n = i
				break
			}
		}
		if n == 0 {
			return "", nil, status.Errorf(codes.FailedPrecondition, "Secret [%s] has no enabled versions.", key)
		}
	default:
		if x, err := strconv.Atoi(v); err == nil {
			n = x
		} else if x, ok := s.aliases[v]; ok {
			n = x
		}
	}
	if n < 1 || n > len(s.versions) {
		return "", nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", key, m[4])
	}
	return fmt.Sprintf("%s/versions/%d", key, n), s.versions[n-1], nil
}

func (s *smServer) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	name, v, err := s.f.resolve(ctx, req.GetName(), "secretmanager.versions.get")
	if err != nil {
		return nil, err
	}
	return &secretmanagerpb.SecretVersion{Name: name, State: v.state, CreateTime: timestamppb.New(time.Unix(1_700_000_000, 0))}, nil
}

func (s *smServer) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	name, v, err := s.f.resolve(ctx, req.GetName(), "secretmanager.versions.access")
	if err != nil {
		return nil, err
	}
	if v.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", name, v.state)
	}
	sum := int64(crc32.Checksum(v.payload, crc32.MakeTable(crc32.Castagnoli)))
	return &secretmanagerpb.AccessSecretVersionResponse{Name: name, Payload: &secretmanagerpb.SecretPayload{Data: v.payload, DataCrc32C: &sum}}, nil
}

// ---- STS and IAM Credentials ----

func jsonReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeGCP) serveHTTPS(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.Host, "parametermanager."), strings.HasSuffix(r.URL.Path, ":render"):
		f.pm.serve(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/token":
		f.calls.Add("oauth2 jwt-bearer token")
		f.serveJWTBearer(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/token":
		f.calls.Add("sts token")
		f.serveSTS(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/") && strings.HasSuffix(r.URL.Path, ":generateAccessToken"):
		f.calls.Add("iam generateAccessToken")
		f.serveGenerate(w, r)
	default:
		f.t.Logf("fake GCP: unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

func (f *fakeGCP) serveSTS(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		jsonReply(w, 400, map[string]string{"error": "invalid_request", "error_description": "malformed form"})
		return
	}
	form := r.PostForm
	if form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" ||
		form.Get("subject_token_type") != jwtTokenType ||
		form.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
		jsonReply(w, 400, map[string]string{"error": "invalid_request", "error_description": "unsupported grant, subject or requested token type"})
		return
	}
	if form.Get("audience") != "//iam.googleapis.com/"+wipResource {
		jsonReply(w, 400, map[string]string{"error": "invalid_target", "error_description": "The target service indicated by the \"audience\" parameters is invalid."})
		return
	}
	if !strings.Contains(form.Get("scope"), cloudPlatformScope) {
		jsonReply(w, 400, map[string]string{"error": "invalid_scope", "error_description": "scope must include cloud-platform"})
		return
	}
	tok := form.Get("subject_token")
	if !providertest.HasAudience(tok, "https://iam.googleapis.com/"+wipResource) {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "The audience in ID Token does not match the expected audience."})
		return
	}
	sub, err := f.reviewer.Review(r.Context(), tok, "https://iam.googleapis.com/"+wipResource)
	if err != nil {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "The ID Token could not be verified."})
		return
	}
	f.mu.Lock()
	principal, ok := f.federated[sub.Username]
	f.mu.Unlock()
	if !ok {
		jsonReply(w, 400, map[string]string{"error": "unauthorized_client", "error_description": "The given credential is rejected by the attribute condition."})
		return
	}
	jsonReply(w, 200, map[string]any{"access_token": f.mint(principal, "ya29.fed-"), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600})
}

func (f *fakeGCP) serveGenerate(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/"), ":generateAccessToken")
	f.mu.Lock()
	principal, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	allowed := f.tokenCreators[email][principal]
	f.mu.Unlock()
	if !ok {
		jsonReply(w, 401, map[string]any{"error": map[string]any{"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
		return
	}
	var body struct {
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Scope) == 0 {
		jsonReply(w, 400, map[string]any{"error": map[string]any{"code": 400, "message": "scope is required", "status": "INVALID_ARGUMENT"}})
		return
	}
	if !allowed {
		jsonReply(w, 403, map[string]any{"error": map[string]any{"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}})
		return
	}
	jsonReply(w, 200, map[string]any{"accessToken": f.mint("sa:"+email, "ya29.imp-"), "expireTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

// ---- metadata server ----

func (f *fakeGCP) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header", http.StatusForbidden)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	f.mu.Lock()
	email := f.metadataEmail
	f.mu.Unlock()
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/service-accounts/default/token":
		f.calls.Add("metadata token")
		jsonReply(w, 200, map[string]any{"access_token": f.mint("sa:"+email, "ya29.md-"), "expires_in": 3599, "token_type": "Bearer"})
	case "/computeMetadata/v1/instance/service-accounts/default/email":
		f.calls.Add("metadata email")
		_, _ = w.Write([]byte(email))
	case "/computeMetadata/v1/project/project-id":
		_, _ = w.Write([]byte(projectID))
	case "/computeMetadata/v1/universe/universe-domain":
		_, _ = w.Write([]byte("googleapis.com"))
	case "/computeMetadata/v1/":
		_, _ = w.Write([]byte("instance/\nproject/\n"))
	default:
		f.t.Logf("fake metadata: unexpected %s", r.URL)
		http.NotFound(w, r)
	}
}

// serveJWTBearer is Google's OAuth 2.0 token endpoint for a service-account
// key: the assertion is a JWT signed (RS256) with the key, issued by the
// account's email, for audience the token endpoint, asking for scopes.
func (f *fakeGCP) serveJWTBearer(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		jsonReply(w, 400, map[string]string{"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT"})
		return
	}
	var claims struct {
		Iss   string `json:"iss"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Exp   int64  `json:"exp"`
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(body, &claims) != nil {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT payload"})
		return
	}
	f.mu.Lock()
	pub := f.saKeys[claims.Iss]
	f.mu.Unlock()
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if pub == nil || err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
		return
	}
	if claims.Aud != "https://oauth2.googleapis.com/token" || !strings.Contains(claims.Scope, cloudPlatformScope) || claims.Exp < time.Now().Unix() {
		jsonReply(w, 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT: audience, scope or expiry"})
		return
	}
	jsonReply(w, 200, map[string]any{"access_token": f.mint("sa:"+claims.Iss, "ya29.key-"), "expires_in": 3599, "token_type": "Bearer"})
}
