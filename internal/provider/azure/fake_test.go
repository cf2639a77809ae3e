package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// The fake speaks the Key Vault data-plane REST API (secrets, keys,
// certificates, version listings with nextLink paging) behind the bearer
// challenge, the Microsoft Entra v2.0 endpoints MSAL uses (instance and
// tenant discovery, token endpoint with client assertions), and the IMDS
// managed identity endpoint. It checks what the services check: the
// assertion is a valid service-account token of the test API server with
// audience api://AzureADTokenExchange and a federated subject, client_id
// and scope match, and Key Vault accepts only tokens issued for its
// resource to principals with access to the vault.

// cloudHosts ties a login host to the Key Vault resource of its cloud.
var cloudHosts = map[string]string{
	"login.microsoftonline.com": "https://vault.azure.net",
	"login.microsoftonline.us":  "https://vault.usgovcloudapi.net",
	"login.chinacloudapi.cn":    "https://vault.azure.cn",
	"login.stack.test":          "https://vault.stack.test",
}

// kvSuffixes maps Key Vault DNS suffixes to their resource.
var kvSuffixes = map[string]string{
	".vault.azure.net":         "https://vault.azure.net",
	".vault.usgovcloudapi.net": "https://vault.usgovcloudapi.net",
	".vault.azure.cn":          "https://vault.azure.cn",
	".vault.stack.test":        "https://vault.stack.test",
}

type kvVer struct {
	id          string
	created     time.Time
	enabled     bool
	value       string // secret value
	contentType string
	certBacked  bool
	jwk         map[string]any // key
	cer         []byte         // certificate DER
}

type grant struct {
	principal string // client ID
	resource  string
	expires   time.Time
}

type fakeAzure struct {
	t        *testing.T
	tenant   string
	reviewer *providertest.Reviewer
	calls    providertest.Counter
	// sent counts the response bytes (and secret values) sent.
	sent providertest.Bytes

	srv  *httptest.Server
	imds *httptest.Server

	mu sync.Mutex
	// objects: kind ("secrets", "keys", "certificates") -> name -> versions (oldest first)
	objects map[string]map[string][]*kvVer
	// federated: client ID -> allowed subject (system:serviceaccount:ns:name)
	federated map[string]string
	// principals are service principals' client secrets by client ID.
	principals map[string]string
	// managed: client ID of the VM's user-assigned identities ("" = system)
	managed map[string]bool
	// access: principals allowed to read the vault
	access map[string]bool
	// denied object names answer 403; throttled answer 429.
	denied, throttled map[string]bool
	tokens            map[string]grant
	// pageSize of version listings.
	pageSize int
	// defaultResource is the challenge resource for hosts that are not a
	// cloud's (endpoint overrides).
	defaultResource string
	seq             int
	// lastScope is the scope of the last token request.
	lastScope string
}

func newFakeAzure(t *testing.T, ca *providertest.CA, reviewer *providertest.Reviewer) *fakeAzure {
	f := &fakeAzure{
		t: t, tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", reviewer: reviewer,
		objects:   map[string]map[string][]*kvVer{"secrets": {}, "keys": {}, "certificates": {}},
		federated: map[string]string{}, principals: map[string]string{}, managed: map[string]bool{}, access: map[string]bool{},
		denied: map[string]bool{}, throttled: map[string]bool{}, tokens: map[string]grant{},
		pageSize: 25, defaultResource: "https://vault.azure.net",
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = ca.ServerTLS(t, "*.vault.azure.net", "*.vault.usgovcloudapi.net", "*.vault.azure.cn", "*.vault.stack.test",
		"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.stack.test")
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.imds = httptest.NewServer(http.HandlerFunc(f.serveIMDS))
	t.Cleanup(f.imds.Close)
	return f
}

// addr is the loopback address of the TLS server.
func (f *fakeAzure) addr() string { return f.srv.Listener.Addr().String() }

// dialer routes every name to the fake; IMDS to the plain HTTP server.
func (f *fakeAzure) dialer() *providertest.Dialer {
	return &providertest.Dialer{
		Routes:   map[string]string{"169.254.169.254:80": f.imds.Listener.Addr().String()},
		Fallback: f.addr(),
	}
}

func (f *fakeAzure) newID() string {
	f.seq++
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// put adds a version and returns its id.
func (f *fakeAzure) put(kind, name string, v kvVer) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	v.id = f.newID()
	if v.created.IsZero() {
		// Versions of one object are a second apart, newest last.
		v.created = time.Unix(1_700_000_000+int64(f.seq), 0)
	}
	v.enabled = true
	f.objects[kind][name] = append(f.objects[kind][name], &v)
	return v.id
}

func (f *fakeAzure) disable(kind, name, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.objects[kind][name] {
		if v.id == id {
			v.enabled = false
		}
	}
}

func (f *fakeAzure) serve(w http.ResponseWriter, r *http.Request) {
	w = f.sent.Writer(w)
	p := r.URL.Path
	if strings.HasPrefix(p, "/secrets/") || strings.HasPrefix(p, "/keys/") || strings.HasPrefix(p, "/certificates/") {
		f.serveVault(w, r)
		return
	}
	f.serveLogin(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

// ---- Microsoft Entra ----

func (f *fakeAzure) aadError(w http.ResponseWriter, code int, kind, desc string) {
	writeJSON(w, code, map[string]any{"error": kind, "error_description": desc, "error_codes": []int{}})
}

func (f *fakeAzure) serveLogin(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/discovery/instance"):
		f.calls.Add("entra instance-discovery")
		writeJSON(w, 200, map[string]any{
			"tenant_discovery_endpoint": "https://" + host + "/" + f.tenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []any{map[string]any{"preferred_network": hostOnly(host), "preferred_cache": hostOnly(host), "aliases": []string{hostOnly(host)}}},
		})
	case r.Method == http.MethodGet && len(parts) == 4 && parts[1] == "v2.0" && parts[3] == "openid-configuration":
		f.calls.Add("entra openid-configuration")
		tenant := parts[0]
		base := "https://" + host + "/" + tenant
		writeJSON(w, 200, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "oauth2" && parts[3] == "token":
		f.calls.Add("entra token")
		f.serveToken(w, r, parts[0])
	default:
		f.t.Logf("fake Entra: unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

func (f *fakeAzure) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := r.ParseForm(); err != nil {
		f.aadError(w, 400, "invalid_request", "AADSTS900144: malformed body")
		return
	}
	form := r.PostForm
	if tenant != f.tenant {
		f.aadError(w, 400, "invalid_tenant", "AADSTS90002: Tenant not found")
		return
	}
	if form.Get("grant_type") == "client_credentials" && form.Has("client_secret") {
		// A service principal's client credentials.
		f.mu.Lock()
		want, ok := f.principals[form.Get("client_id")]
		f.mu.Unlock()
		if !ok || want != form.Get("client_secret") {
			f.aadError(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided")
			return
		}
		f.calls.Add("entra client secret")
		f.issue(w, form.Get("client_id"), f.defaultResource)
		return
	}
	if form.Get("grant_type") != "client_credentials" || form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		f.aadError(w, 400, "invalid_request", "AADSTS900144: grant_type client_credentials with a jwt-bearer client assertion is required")
		return
	}
	clientID := form.Get("client_id")
	f.mu.Lock()
	subject, ok := f.federated[clientID]
	f.mu.Unlock()
	if !ok {
		f.aadError(w, 400, "unauthorized_client", "AADSTS700016: Application not found in the directory")
		return
	}
	if !providertest.HasAudience(form.Get("client_assertion"), TokenAudience) {
		f.aadError(w, 401, "invalid_client", "AADSTS700212: No matching federated identity record found for presented assertion audience")
		return
	}
	sub, err := f.reviewer.Review(r.Context(), form.Get("client_assertion"), TokenAudience)
	if err != nil {
		f.aadError(w, 401, "invalid_client", "AADSTS700211: No matching federated identity record found for presented assertion: "+err.Error())
		return
	}
	if sub.Username != subject {
		f.aadError(w, 401, "invalid_client", "AADSTS700213: No matching federated identity record found for presented assertion subject")
		return
	}
	resource, ok := cloudHosts[hostOnly(r.Host)]
	if !ok {
		resource = f.defaultResource
	}
	scope := form.Get("scope")
	f.mu.Lock()
	f.lastScope = scope
	f.mu.Unlock()
	if !strings.Contains(" "+scope+" ", " "+resource+"/.default ") {
		f.aadError(w, 400, "invalid_scope", "AADSTS70011: The provided value for scope is not valid: "+scope)
		return
	}
	f.issue(w, clientID, resource)
}

func (f *fakeAzure) issue(w http.ResponseWriter, principal, resource string) {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "fake-at-" + base64.RawURLEncoding.EncodeToString(b)
	f.mu.Lock()
	f.tokens[tok] = grant{principal: principal, resource: resource, expires: time.Now().Add(time.Hour)}
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
}

// serveIMDS is the instance metadata managed identity endpoint.
func (f *fakeAzure) serveIMDS(w http.ResponseWriter, r *http.Request) {
	f.calls.Add("imds token")
	if r.URL.Path != "/metadata/identity/oauth2/token" || r.Header.Get("Metadata") != "true" {
		writeJSON(w, 400, map[string]any{"error": "invalid_request", "error_description": "Required metadata header not specified"})
		return
	}
	q := r.URL.Query()
	id := q.Get("client_id")
	f.mu.Lock()
	ok := f.managed[id]
	f.mu.Unlock()
	if !ok {
		writeJSON(w, 400, map[string]any{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	resource := strings.TrimSuffix(q.Get("resource"), "/")
	if _, known := kvResources()[resource]; !known {
		writeJSON(w, 400, map[string]any{"error": "invalid_resource", "error_description": "unknown resource"})
		return
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "fake-mi-" + base64.RawURLEncoding.EncodeToString(b)
	principal := "mi:" + id
	f.mu.Lock()
	f.tokens[tok] = grant{principal: principal, resource: resource, expires: time.Now().Add(time.Hour)}
	f.mu.Unlock()
	exp := time.Now().Add(time.Hour).Unix()
	writeJSON(w, 200, map[string]any{"access_token": tok, "expires_in": "3599", "expires_on": strconv.FormatInt(exp, 10),
		"resource": resource, "token_type": "Bearer", "client_id": id})
}

func kvResources() map[string]bool {
	m := map[string]bool{}
	for _, r := range kvSuffixes {
		m[r] = true
	}
	return m
}

// ---- Key Vault ----

func (f *fakeAzure) kvError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": errCode, "message": msg}})
}

// resourceFor returns the resource a vault host belongs to.
func (f *fakeAzure) resourceFor(host string) string {
	h := hostOnly(host)
	for suffix, res := range kvSuffixes {
		if strings.HasSuffix(h, suffix) {
			return res
		}
	}
	return f.defaultResource
}

func (f *fakeAzure) authority(host string) string {
	res := f.resourceFor(host)
	for login, r := range cloudHosts {
		if r == res {
			return "https://" + login + "/" + f.tenant
		}
	}
	return "https://login.microsoftonline.com/" + f.tenant
}

func (f *fakeAzure) serveVault(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") == "" {
		f.kvError(w, 400, "BadParameter", "api-version is required")
		return
	}
	resource := f.resourceFor(r.Host)
	authz := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	f.mu.Lock()
	g, valid := f.tokens[tok]
	f.mu.Unlock()
	if !ok || !valid || g.resource != resource || time.Now().After(g.expires) {
		f.calls.Add("kv challenge")
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s", resource="%s"`, f.authority(r.Host), resource))
		f.kvError(w, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	kind := parts[0]
	if len(parts) < 2 || len(parts) > 3 {
		f.kvError(w, 400, "BadParameter", "bad path")
		return
	}
	name := parts[1]
	f.mu.Lock()
	allowed := f.access[g.principal]
	denied, throttled := f.denied[name], f.throttled[name]
	f.mu.Unlock()
	list := len(parts) == 3 && parts[2] == "versions"
	op := "kv get "
	if list {
		op = "kv list "
	}
	f.calls.Add(op + kind)
	if !allowed || denied {
		f.kvError(w, 403, "Forbidden", fmt.Sprintf("The user, group or application '%s' does not have %s get permission on key vault.", g.principal, kind))
		return
	}
	if throttled {
		w.Header().Set("Retry-After", "0")
		f.kvError(w, 429, "Throttled", "Request was not processed because too many requests were received.")
		return
	}
	f.mu.Lock()
	versions := append([]*kvVer(nil), f.objects[kind][name]...)
	f.mu.Unlock()
	notFound := map[string]string{"secrets": "SecretNotFound", "keys": "KeyNotFound", "certificates": "CertificateNotFound"}[kind]
	if len(versions) == 0 {
		f.kvError(w, 404, notFound, fmt.Sprintf("A %s with (name/id) %s was not found in this key vault.", strings.TrimSuffix(kind, "s"), name))
		return
	}
	base := "https://" + r.Host + "/" + kind + "/" + name + "/"
	if list {
		f.serveList(w, r, kind, base, versions)
		return
	}
	var v *kvVer
	if len(parts) == 3 && parts[2] != "" {
		for _, c := range versions {
			if c.id == parts[2] {
				v = c
			}
		}
	} else {
		// Latest = newest created version (enabled or not, as Key Vault).
		v = versions[len(versions)-1]
	}
	if v == nil {
		f.kvError(w, 404, notFound, fmt.Sprintf("A %s with (name/id) %s/%s was not found in this key vault.", strings.TrimSuffix(kind, "s"), name, parts[2]))
		return
	}
	if !v.enabled {
		f.kvError(w, 403, "Forbidden", "Operation get is not allowed on a disabled "+strings.TrimSuffix(kind, "s")+".")
		return
	}
	writeJSON(w, 200, f.render(r.Host, kind, name, v))
}

func attrs(v *kvVer) map[string]any {
	return map[string]any{"enabled": v.enabled, "created": v.created.Unix(), "updated": v.created.Unix(), "recoveryLevel": "Recoverable+Purgeable"}
}

func (f *fakeAzure) render(host, kind, name string, v *kvVer) map[string]any {
	base := "https://" + host + "/"
	switch kind {
	case "secrets":
		m := map[string]any{"value": v.value, "id": base + "secrets/" + name + "/" + v.id, "attributes": attrs(v)}
		if v.contentType != "" {
			m["contentType"] = v.contentType
		}
		if v.certBacked {
			m["kid"] = base + "keys/" + name + "/" + v.id
			m["managed"] = true
		}
		return m
	case "keys":
		jwk := map[string]any{"kid": base + "keys/" + name + "/" + v.id}
		for k, x := range v.jwk {
			jwk[k] = x
		}
		return map[string]any{"key": jwk, "attributes": attrs(v)}
	default:
		return map[string]any{"id": base + "certificates/" + name + "/" + v.id, "kid": base + "keys/" + name + "/" + v.id,
			"sid": base + "secrets/" + name + "/" + v.id, "cer": base64.StdEncoding.EncodeToString(v.cer), "attributes": attrs(v)}
	}
}

func (f *fakeAzure) serveList(w http.ResponseWriter, r *http.Request, kind, base string, versions []*kvVer) {
	// Key Vault lists in no particular order; the fake lists oldest first.
	skip := 0
	if s := r.URL.Query().Get("$skiptoken"); s != "" {
		skip, _ = strconv.Atoi(s)
	}
	end := skip + f.pageSize
	if end > len(versions) {
		end = len(versions)
	}
	var items []any
	for _, v := range versions[skip:end] {
		idField := "id"
		if kind == "keys" {
			idField = "kid"
		}
		items = append(items, map[string]any{idField: base + v.id, "attributes": attrs(v)})
	}
	out := map[string]any{"value": items, "nextLink": nil}
	if end < len(versions) {
		u := url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path}
		q := url.Values{"api-version": {r.URL.Query().Get("api-version")}, "$skiptoken": {strconv.Itoa(end)}}
		u.RawQuery = q.Encode()
		out["nextLink"] = u.String()
	}
	writeJSON(w, 200, out)
}

// federate registers a workload identity: clientID trusts tokens of the
// service account and may read the vault.
func (f *fakeAzure) federate(clientID, ns, sa string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.federated[clientID] = "system:serviceaccount:" + ns + ":" + sa
	f.access[clientID] = true
}

var _ = context.Background
