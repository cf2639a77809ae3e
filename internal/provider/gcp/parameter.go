package gcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/auth"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	parametermanager "google.golang.org/api/parametermanager/v1"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// EnvParameterManagerEndpoint overrides the Parameter Manager REST base
// URL (default https://parametermanager.googleapis.com/ for location
// "global", https://parametermanager.<l>.rep.googleapis.com/ otherwise);
// "{location}" in it is replaced by the parameter's location. Documented
// in docs/providers/gcp.md and docs/configuration.md.
const EnvParameterManagerEndpoint = "SSI_GCP_PARAMETERMANAGER_ENDPOINT"

// parameterEndpoint is the REST base URL serving a parameter version, as
// upstream chooses it: the global service for location "global", the
// regional endpoint of the location otherwise. The location is one DNS
// label (spc refuses anything else), so the host is always Google's.
func (p *Provider) parameterEndpoint(s *spc.GCPSecret) string {
	if v := p.getenv(EnvParameterManagerEndpoint); v != "" {
		v = strings.ReplaceAll(v, "{location}", s.Location)
		return strings.TrimSuffix(v, "/") + "/"
	}
	if s.IsGlobalParameter() {
		return "https://parametermanager.googleapis.com/"
	}
	return "https://parametermanager." + s.Location + ".rep.googleapis.com/"
}

// parameterService returns the identity's Parameter Manager REST client
// for the parameter's endpoint, creating it on first use. Its requests go
// through the provider's HTTP client (response bodies capped at
// MaxResponseBytes, redirects only to the same host) with the identity's
// bearer token added per request.
func (p *Provider) parameterService(ctx context.Context, req provider.Request, id *podIdentity, s *spc.GCPSecret) (*parametermanager.Service, error) {
	endpoint := p.parameterEndpoint(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	if svc := id.parameters[endpoint]; svc != nil {
		return svc, nil
	}
	if id.rest == nil {
		hc := *p.hc
		hc.Transport = &bearer{creds: id.creds, base: p.hc.Transport}
		id.rest = &hc
	}
	svc, err := parametermanager.NewService(ctx, option.WithEndpoint(endpoint), option.WithHTTPClient(id.rest), option.WithLogger(sdkLogger))
	if err != nil {
		return nil, p.objectError(req, s.ResourceName, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("create the Parameter Manager client for %s: %w", endpoint, err)))
	}
	id.parameters[endpoint] = svc
	return svc, nil
}

// fetchParameter renders a Parameter Manager version, as upstream does
// (RenderParameterVersion): the file holds the rendered payload, in which
// the service has replaced __REF__(//secretmanager.googleapis.com/...)
// references by the secrets' values, or its extracted key. The rendered
// payload can change while the version name stays (a reference to a
// secret's "latest"), so every fetch renders; the version recorded is the
// name the service answers with, as upstream reports it.
func (p *Provider) fetchParameter(ctx context.Context, req provider.Request, id *podIdentity, s *spc.GCPSecret) (provider.Object, error) {
	name := s.ResourceName
	svc, err := p.parameterService(ctx, req, id, s)
	if err != nil {
		return provider.Object{}, err
	}
	resp, err := svc.Projects.Locations.Parameters.Versions.Render(name).Context(ctx).Do()
	if err != nil {
		return provider.Object{}, p.objectError(req, name, classifyREST("render parameter version "+name, err))
	}
	data, err := decodeBytes(resp.RenderedPayload)
	if err != nil {
		return provider.Object{}, p.objectError(req, name, provider.WithReason(provider.ReasonInvalidContent,
			fmt.Errorf("render parameter version %s: the rendered payload is not base64", name)))
	}
	if data, err = extract(data, s.ExtractJSONKey, s.ExtractYAMLKey); err != nil {
		return provider.Object{}, p.objectError(req, name, provider.WithReason(provider.ReasonInvalidContent, err))
	}
	version := resp.ParameterVersion
	if version == "" {
		version = name
	}
	mode := s.FilePermission
	if mode == 0 && !s.ExactMode {
		mode = req.Permission
	}
	return provider.Object{ID: name, Version: version, Files: []atomicdir.File{{Path: s.File, Mode: mode, ExactMode: s.ExactMode, Data: data}}}, nil
}

// decodeBytes decodes a proto bytes field of a JSON answer: standard
// base64, which Google's JSON mapping writes (the URL-safe alphabet is
// accepted too, as the mapping allows either on input).
func decodeBytes(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

// bearer adds the identity's access token to each request.
type bearer struct {
	creds *auth.Credentials
	base  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := b.creds.Token(r.Context())
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, &authError{"obtain a Google access token", err}
	}
	r2 := r.Clone(r.Context())
	typ := tok.Type
	if typ == "" {
		typ = "Bearer"
	}
	r2.Header.Set("Authorization", typ+" "+tok.Value)
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r2)
}

// CloseIdleConnections reaches the base transport, so that closing an
// identity releases its pooled connections.
func (b *bearer) CloseIdleConnections() {
	if c, ok := b.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// restStatusReasons are Parameter Manager's exceptions to
// provider.ReasonForHTTP: none, so the map is empty; it exists so that a
// special case has a place next to the shared mechanism.
var restStatusReasons = map[int]provider.Reason{}

// classifyREST maps an error of a Parameter Manager REST call to a Reason
// and a summary naming the operation, the HTTP status and Google's status
// name and message (which name resources, never payloads; the body itself
// is never quoted).
func classifyREST(op string, err error) error {
	if errors.Is(err, identity.ErrNoToken) {
		return provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: %w", op, err))
	}
	var authErr *authError
	if errors.As(err, &authErr) {
		return provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: %w", op, authErr))
	}
	var tooLarge *limits.TooLargeError
	if errors.As(err, &tooLarge) {
		return provider.WithReason(provider.ReasonInvalidContent, provider.Summarize(op+": "+tooLarge.Error(), err))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return provider.WithReason(provider.ReasonUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return provider.WithReason(provider.ReasonUnavailable, provider.Summarize(op+": "+firstLine(err.Error()), err))
	}
	msg := fmt.Sprintf("%s: HTTP %d", op, ge.Code)
	if st := googleStatus(ge.Body); st != "" {
		msg += " " + st
	}
	if m := strings.TrimSpace(ge.Message); m != "" {
		msg += ": " + firstLine(m)
	}
	return provider.WithReason(provider.ReasonForHTTP(ge.Code, restStatusReasons), provider.Summarize(msg, err))
}

// googleStatus is the status name ("NOT_FOUND") of a Google JSON error
// body, if it has one of the expected shape.
func googleStatus(body string) string {
	var e struct {
		Error struct {
			Status string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil {
		return ""
	}
	for _, r := range e.Error.Status {
		if (r < 'A' || r > 'Z') && r != '_' {
			return ""
		}
	}
	return e.Error.Status
}

// firstLine cuts a message to its first line and at most 300 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
