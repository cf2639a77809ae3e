package gcp

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// fakePM is the Parameter Manager REST API (v1) as the provider uses it:
// GET /v1/{name}:render, answered with a RenderParameterVersionResponse in
// Google's JSON mapping (bytes fields in base64). It checks the bearer
// token against the tokens the fake STS, IAM Credentials and metadata
// server issued, who may render, and that a parameter arrives at its
// location's endpoint (parametermanager.googleapis.com for "global",
// parametermanager.<l>.rep.googleapis.com otherwise; unless
// fakeGCP.checkAuthority is off, for endpoints from the environment), and renders
// __REF__(//secretmanager.googleapis.com/<secret version>) references from
// the Secret Manager fake's secrets. Errors have Google's JSON error shape.
type fakePM struct {
	f *fakeGCP

	mu sync.Mutex
	// params by canonical name projects/<number>/locations/<l>/parameters/<n>;
	// versions in creation order ("latest" is the last one).
	params map[string][]pmVersion
	// renderers may render; denied and throttled are parameter ids.
	renderers         map[string]bool
	denied, throttled map[string]bool
	// hosts are the Host headers of the render requests, in order.
	hosts []string
}

type pmVersion struct {
	id      string
	payload []byte
}

func newFakePM(f *fakeGCP) *fakePM {
	return &fakePM{f: f, params: map[string][]pmVersion{}, renderers: map[string]bool{}, denied: map[string]bool{}, throttled: map[string]bool{}}
}

// addVersion adds version id with payload to a parameter
// (projects/<p>/locations/<l>/parameters/<n>, created on first use).
func (pm *fakePM) addVersion(parameter, id string, payload []byte) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	key := canonical(parameter)
	pm.params[key] = append(pm.params[key], pmVersion{id: id, payload: payload})
}

func (pm *fakePM) requestHosts() []string {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	return append([]string(nil), pm.hosts...)
}

var (
	renderPath = regexp.MustCompile(`^/v1/(projects/[^/]+/locations/([^/]+)/parameters/([^/]+))/versions/([^/:]+):render$`)
	secretRef  = regexp.MustCompile(`__REF__\(//secretmanager\.googleapis\.com/([^)]+)\)`)
)

func googleError(w http.ResponseWriter, code int, status, msg string) {
	jsonReply(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}

func (pm *fakePM) serve(w http.ResponseWriter, r *http.Request) {
	pm.f.calls.Add("pm " + r.Method)
	m := renderPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodGet || m == nil {
		pm.f.t.Logf("fake Parameter Manager: unexpected %s %s", r.Method, r.URL.Path)
		googleError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.")
		return
	}
	parameter, location, id, version := m[1], m[2], m[3], m[4]
	pm.f.calls.Add("pm render")
	pm.mu.Lock()
	pm.hosts = append(pm.hosts, r.Host)
	pm.mu.Unlock()

	auth := r.Header.Get("Authorization")
	pm.f.mu.Lock()
	principal, ok := pm.f.tokens[strings.TrimPrefix(auth, "Bearer ")]
	pm.f.mu.Unlock()
	if !strings.HasPrefix(auth, "Bearer ") || !ok {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		return
	}
	want := "parametermanager.googleapis.com"
	if location != "global" {
		want = "parametermanager." + location + ".rep.googleapis.com"
	}
	pm.f.mu.Lock()
	checkHost := pm.f.checkAuthority
	pm.f.mu.Unlock()
	if checkHost && strings.TrimSuffix(r.Host, ":443") != want {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Location "+location+" must be accessed through "+want+", not "+r.Host+".")
		return
	}
	name := parameter + "/versions/" + version
	pm.mu.Lock()
	allowed := pm.renderers[principal] && !pm.denied[id]
	throttled := pm.throttled[id]
	versions := pm.params[canonical(parameter)]
	pm.mu.Unlock()
	if !allowed {
		googleError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'parametermanager.parameterVersions.render' denied for resource '"+name+"' (or it may not exist).")
		return
	}
	if throttled {
		googleError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Render requests' and limit 'Render requests per minute per project'.")
		return
	}
	if len(versions) == 0 {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Parameter ["+canonical(parameter)+"] not found.")
		return
	}
	var v *pmVersion
	for i := range versions {
		if versions[i].id == version || (version == "latest" && i == len(versions)-1) {
			v = &versions[i]
		}
	}
	if v == nil {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Parameter Version ["+canonical(name)+"] not found.")
		return
	}
	rendered, unresolved := pm.render(v.payload)
	if unresolved != "" {
		googleError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "The secret reference "+unresolved+" cannot be resolved.")
		return
	}
	jsonReply(w, http.StatusOK, map[string]any{
		"parameterVersion": canonical(parameter) + "/versions/" + v.id,
		"payload":          map[string]any{"data": base64.StdEncoding.EncodeToString(v.payload)},
		"renderedPayload":  base64.StdEncoding.EncodeToString(rendered),
	})
}

// render replaces each secret reference by the referenced version's
// payload; it returns the first reference it cannot resolve.
func (pm *fakePM) render(payload []byte) ([]byte, string) {
	f := pm.f
	f.mu.Lock()
	defer f.mu.Unlock()
	unresolved := ""
	out := secretRef.ReplaceAllFunc(payload, func(ref []byte) []byte {
		name := string(secretRef.FindSubmatch(ref)[1])
		m := versionName.FindStringSubmatch(name)
		if m == nil {
			unresolved = name
			return nil
		}
		s := f.secrets[canonical(m[1])]
		n, err := strconv.Atoi(m[4])
		if m[4] == "latest" && s != nil {
			n, err = len(s.versions), nil
		}
		if s == nil || err != nil || n < 1 || n > len(s.versions) {
			if unresolved == "" {
				unresolved = name
			}
			return nil
		}
		return s.versions[n-1].payload
	})
	return out, unresolved
}
