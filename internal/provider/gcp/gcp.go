// Package gcp is the "gcp" provider: it reads Google Secret Manager secret
// versions (global and regional) with cloud.google.com/go/secretmanager
// over gRPC, and renders Parameter Manager parameter versions (global and
// regional) with the REST client google.golang.org/api/parametermanager/v1,
// taking the parameters of the upstream Google Secret Manager provider
// unchanged (see docs/providers/gcp.md).
//
// The pod authenticates with its own identity: the GKE metadata server
// (application default credentials in the pod), or workload identity
// federation, exchanging its projected service-account token at STS and
// optionally impersonating a Google service account. "auth: provider-adc"
// uses the fetching process's own application default credentials.
//
// Rotation is version-aware: a numbered version that is already written
// costs no call (versions are immutable); "latest" and aliases are resolved
// with GetSecretVersion, which returns metadata only, and the payload is
// read only when the resolved version changed.
package gcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	parametermanager "google.golang.org/api/parametermanager/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// Environment variables naming endpoints; each is documented in
// docs/configuration.md.
const (
	// EnvSecretManagerEndpoint overrides the Secret Manager gRPC endpoint
	// (host:port) for global and regional secrets alike. "{location}" in
	// it is replaced by a regional secret's location.
	EnvSecretManagerEndpoint = "SSI_GCP_SECRETMANAGER_ENDPOINT" //nolint:gosec // a variable name, not a credential
	// EnvSTSEndpoint overrides the Security Token Service base URL used by
	// workload identity federation (default https://sts.googleapis.com).
	EnvSTSEndpoint = "SSI_GCP_STS_ENDPOINT"
	// EnvIAMCredentialsEndpoint overrides the IAM Credentials base URL used
	// to impersonate a service account (default
	// https://iamcredentials.googleapis.com).
	EnvIAMCredentialsEndpoint = "SSI_GCP_IAMCREDENTIALS_ENDPOINT" //nolint:gosec // a variable name, not a credential
)

// sdkLogger is handed to every Google client library the provider uses
// (Secret Manager, the auth library's credential detection and workload
// identity federation). Those libraries log every request and response,
// payloads and tokens included, when GOOGLE_SDK_GO_LOGGING_LEVEL=debug is
// set in the environment and no logger is given; an explicit logger that
// discards everything keeps secret values and tokens out of the logs
// whatever the environment says.
var sdkLogger = slog.New(slog.DiscardHandler)

// Options configure the provider. The zero value is what production uses.
type Options struct {
	// GRPCDialOptions are added to every Secret Manager connection, after
	// the library's own (tests pass transport credentials trusting their
	// server, and a dialer).
	GRPCDialOptions []grpc.DialOption
	// HTTPClient sends the token requests (STS, IAM Credentials, metadata
	// server); nil means http.DefaultClient's settings. Either way New
	// limits its response bodies to MaxResponseBytes.
	HTTPClient *http.Client
	// Getenv reads the endpoint variables; nil means os.Getenv.
	Getenv func(string) string
	// OutsidePod is set where the fetching process is not the pod (the
	// node shim): its application default credentials are the node's, not
	// the pod's, so "auth: pod-adc" then requires workload identity
	// federation and never falls back to the process's ADC, and "auth:
	// provider-adc" is refused unless AllowProcessIdentity is set.
	OutsidePod bool
	// AllowProcessIdentity, with OutsidePod, lets "auth: provider-adc"
	// classes fetch with this process's application default credentials
	// (the node's or the sync controller's) for any tenant: the
	// operator's decision (builtin.Shared).
	AllowProcessIdentity bool
	// DisableRetries turns off the client library's retries of
	// UNAVAILABLE and RESOURCE_EXHAUSTED, so tests see first answers.
	DisableRetries bool
	// MaxResponseBytes caps every Secret Manager message received (gRPC
	// MaxCallRecvMsgSize) and every token response body; 0 means
	// limits.Sizes{}.ResponseBytes().
	MaxResponseBytes int64
}

// Provider fetches Secret Manager secret versions. It keeps credentials and
// connections between fetches and is safe for concurrent use.
type Provider struct {
	opts Options
	// hc is opts.HTTPClient (or a default client) with the same-host
	// redirect policy.
	hc *http.Client

	mu     sync.Mutex
	idents map[string]*podIdentity
	// noMetadata remembers resources whose metadata (GetSecretVersion)
	// the identity may not read, so their versions are read with
	// AccessSecretVersion directly.
	noMetadata map[string]bool
}

// podIdentity is the credentials of one identity and the Secret Manager
// clients (by endpoint) that use them, which go with it.
type podIdentity struct {
	creds    *auth.Credentials
	mode     string
	tokens   *podTokens
	lastUsed time.Time
	clients  map[string]*secretmanager.Client
	// parameters are the Parameter Manager REST clients by base URL,
	// sending through rest (the provider's HTTP client with this
	// identity's bearer token).
	parameters map[string]*parametermanager.Service
	rest       *http.Client
}

// close closes the identity's clients.
func (id *podIdentity) close() error {
	var errs []error
	for endpoint, c := range id.clients {
		errs = append(errs, c.Close())
		delete(id.clients, endpoint)
	}
	if id.rest != nil {
		id.rest.CloseIdleConnections()
	}
	clear(id.parameters)
	return errors.Join(errs...)
}

// maxCached bounds kept identities, and with them their clients (the node
// shim serves many pods; the agent one).
const maxCached = 64

// New returns the provider.
func New(opts Options) *Provider {
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = limits.Sizes{}.ResponseBytes()
	}
	opts.HTTPClient = limits.Client(opts.HTTPClient, opts.MaxResponseBytes)
	// First, so that a test's own call options still apply after it.
	opts.GRPCDialOptions = append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(int(opts.MaxResponseBytes)))}, opts.GRPCDialOptions...)
	return &Provider{opts: opts, hc: provider.SameHostClient(opts.HTTPClient), idents: map[string]*podIdentity{}, noMetadata: map[string]bool{}}
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return spc.ProviderGCP }

// Close closes the kept connections.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, id := range p.idents {
		errs = append(errs, id.close())
	}
	return errors.Join(errs...)
}

func (p *Provider) getenv(k string) string {
	if p.opts.Getenv != nil {
		return p.opts.Getenv(k)
	}
	return os.Getenv(k)
}

// httpClient is the client of the token requests, following redirects
// only to the same host (provider.CheckRedirect).
func (p *Provider) httpClient() *http.Client { return p.hc }

func (p *Provider) endpoint(env, def string) string {
	if v := p.getenv(env); v != "" {
		return strings.TrimSuffix(v, "/")
	}
	return def
}

// secretEndpoint is the gRPC endpoint serving a secret.
func (p *Provider) secretEndpoint(s *spc.GCPSecret) string {
	if v := p.getenv(EnvSecretManagerEndpoint); v != "" {
		return strings.ReplaceAll(v, "{location}", s.Location)
	}
	if s.Kind == spc.GCPRegionalSecret {
		return "secretmanager." + s.Location + ".rep.googleapis.com:443"
	}
	return "secretmanager.googleapis.com:443"
}

// Fetch implements provider.Provider.
func (p *Provider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	if req.Class == nil || req.Class.GCP == nil {
		return nil, &provider.Error{Provider: spc.ProviderGCP, Reason: provider.ReasonInvalidConfig, Err: errors.New("the class has no gcp parameters")}
	}
	g := req.Class.GCP
	if len(g.Secrets) == 0 {
		// secrets: "[]": nothing to read, no identity needed.
		return nil, nil
	}
	id, err := p.identity(ctx, req)
	if err != nil {
		return nil, err
	}
	// Obtain (or reuse) the access token first, so an identity problem is
	// reported as such rather than as a failed RPC.
	if _, err := id.creds.Token(ctx); err != nil {
		return nil, p.classError(req, provider.ReasonUnauthenticated, fmt.Errorf("obtain a Google access token (%s): %w", id.mode, err))
	}
	// Entries of one resource share an id (the resource name). Versions
	// recorded under a shared id are ambiguous, so such entries are always
	// read in full.
	count := map[string]int{}
	for i := range g.Secrets {
		count[g.Secrets[i].ResourceName]++
	}
	out := make([]provider.Object, 0, len(g.Secrets))
	var errs []*provider.Error
	for i := range g.Secrets {
		s := &g.Secrets[i]
		cur := req.Current[s.ResourceName]
		if count[s.ResourceName] > 1 {
			cur = ""
		}
		var obj provider.Object
		var err error
		if cur != "" && req.Kept(s.ResourceName) {
			// A certificate before its renewal point: its previous answer
			// stands.
			out = append(out, provider.Object{ID: s.ResourceName, Version: cur, Unchanged: true})
			continue
		}
		if s.Kind == spc.GCPParameterVersion {
			obj, err = p.fetchParameter(ctx, req, id, s)
		} else {
			obj, err = p.fetchSecret(ctx, req, id, s, cur)
		}
		if err != nil {
			// A secret Secret Manager does not have is reported with the
			// others (provider.Partial), so that an optional one can be
			// left out; any other failure ends the fetch.
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Object == "" {
				return nil, err
			}
			errs = append(errs, pe)
			if pe.Reason != provider.ReasonNotFound {
				return provider.Partial(out, errs)
			}
			continue
		}
		out = append(out, obj)
	}
	return provider.Partial(out, errs)
}

// HonoursKeep implements provider.Keeper: an entry in Request.Keep (a
// certificate before its renewal point) is not read.
func (p *Provider) HonoursKeep() bool { return true }

var _ provider.Keeper = (*Provider)(nil)

var numericVersion = regexp.MustCompile(`/versions/[0-9]+$`)

func (p *Provider) fetchSecret(ctx context.Context, req provider.Request, id *podIdentity, s *spc.GCPSecret, cur string) (provider.Object, error) {
	name := s.ResourceName
	if cur != "" && numericVersion.MatchString(name) && versionNumber(cur) == versionNumber(name) {
		// A numbered version never changes content.
		return provider.Object{ID: name, Version: cur, Unchanged: true}, nil
	}
	c, err := p.client(ctx, req, id, s)
	if err != nil {
		return provider.Object{}, err
	}
	target := name
	if cur != "" && !numericVersion.MatchString(name) && !p.skipMetadata(name) {
		v, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name}, p.callOpts()...)
		switch {
		case err == nil:
			if v.GetName() == cur {
				return provider.Object{ID: name, Version: cur, Unchanged: true}, nil
			}
			// Read exactly the version just resolved.
			target = v.GetName()
		case status.Code(err) == codes.PermissionDenied:
			// secretmanager.versions.get is not granted (roles/secretmanager.secretAccessor
			// has only versions.access): compare after reading.
			p.mu.Lock()
			p.noMetadata[name] = true
			p.mu.Unlock()
		default:
			return provider.Object{}, p.objectError(req, name, classify("get secret version "+name, err))
		}
	}
	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: target}, p.callOpts()...)
	if err != nil {
		return provider.Object{}, p.objectError(req, name, classify("access secret version "+target, err))
	}
	version := resp.GetName()
	if version == cur && cur != "" {
		return provider.Object{ID: name, Version: version, Unchanged: true}, nil
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) != *sum {
		return provider.Object{}, p.objectError(req, name, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("access secret version %s: the payload does not match its CRC32C checksum", target)))
	}
	if data, err = extract(data, s.ExtractJSONKey, s.ExtractYAMLKey); err != nil {
		return provider.Object{}, p.objectError(req, name, provider.WithReason(provider.ReasonInvalidContent, err))
	}
	mode := s.FilePermission
	if mode == 0 && !s.ExactMode {
		mode = req.Permission
	}
	return provider.Object{ID: name, Version: version, Files: []atomicdir.File{{Path: s.File, Mode: mode, ExactMode: s.ExactMode, Data: data}}}, nil
}

func versionNumber(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

func (p *Provider) skipMetadata(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noMetadata[name]
}

func (p *Provider) callOpts() []gax.CallOption {
	if p.opts.DisableRetries {
		return []gax.CallOption{gax.WithRetry(func() gax.Retryer { return noRetry{} })}
	}
	return nil
}

type noRetry struct{}

func (noRetry) Retry(error) (time.Duration, bool) { return 0, false }

// identity returns the credentials for the request's identity, creating
// them on first use.
func (p *Provider) identity(ctx context.Context, req provider.Request) (*podIdentity, error) {
	g, cl, pod := req.Class.GCP, req.Identity.Cloud, req.Identity.Pod
	keyJSON, err := keyJSONOf(g, cl, req.Secrets)
	if err != nil {
		return nil, p.classError(req, provider.ReasonInvalidConfig, err)
	}
	key := g.Auth
	switch {
	case keyJSON != nil:
		// A rotated Secret gets new credentials; the key holds a digest
		// of the key file, never the file.
		h := sha256.Sum256(keyJSON)
		key = strings.Join([]string{"key.json", pod.Namespace, hex.EncodeToString(h[:])}, "\x00")
	case g.Auth != spc.GCPAuthProviderADC:
		key = strings.Join([]string{g.Auth, cl.GCPWorkloadIdentityProvider, cl.GCPServiceAccount, pod.Namespace, pod.ServiceAccount, pod.UID}, "\x00")
	}
	p.mu.Lock()
	id := p.idents[key]
	p.mu.Unlock()
	if id == nil {
		tokens := &podTokens{}
		var creds *auth.Credentials
		var mode string
		if keyJSON != nil {
			creds, mode, err = p.keyCredentials(keyJSON)
		} else {
			creds, mode, err = p.credentialsFor(ctx, g, cl, tokens)
		}
		if err != nil {
			reason := provider.ReasonUnauthenticated
			if errors.Is(err, errPodADCOutsidePod) || errors.Is(err, errProviderADCOutsidePod) {
				reason = provider.ReasonInvalidConfig
			}
			return nil, p.classError(req, reason, err)
		}
		id = &podIdentity{creds: creds, mode: mode, tokens: tokens, clients: map[string]*secretmanager.Client{}, parameters: map[string]*parametermanager.Service{}}
		p.mu.Lock()
		if old := p.idents[key]; old != nil {
			id = old
		} else {
			if len(p.idents) >= maxCached {
				evict(p.idents, func(v *podIdentity) time.Time { return v.lastUsed }, func(v *podIdentity) { _ = v.close() })
			}
			p.idents[key] = id
		}
		p.mu.Unlock()
	}
	if req.Identity.Tokens != nil {
		id.tokens.Set(req.Identity.Tokens)
	}
	p.mu.Lock()
	id.lastUsed = time.Now()
	p.mu.Unlock()
	return id, nil
}

// client returns the identity's Secret Manager client for the secret's
// endpoint, creating it on first use.
func (p *Provider) client(ctx context.Context, req provider.Request, id *podIdentity, s *spc.GCPSecret) (*secretmanager.Client, error) {
	endpoint := p.secretEndpoint(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := id.clients[endpoint]; c != nil {
		return c, nil
	}
	opts := []option.ClientOption{option.WithEndpoint(endpoint), option.WithAuthCredentials(id.creds), option.WithLogger(sdkLogger)}
	for _, d := range p.opts.GRPCDialOptions {
		opts = append(opts, option.WithGRPCDialOption(d))
	}
	c, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, p.objectError(req, s.ResourceName, provider.WithReason(provider.ReasonUnavailable, fmt.Errorf("connect to Secret Manager at %s: %w", endpoint, err)))
	}
	id.clients[endpoint] = c
	return c, nil
}

func evict[V any](m map[string]V, at func(V) time.Time, closeFn func(V)) {
	var oldest string
	var t time.Time
	for k, v := range m {
		if oldest == "" || at(v).Before(t) {
			oldest, t = k, at(v)
		}
	}
	if closeFn != nil {
		closeFn(m[oldest])
	}
	delete(m, oldest)
}

func (p *Provider) objectError(req provider.Request, object string, err error) error {
	return provider.Fail(req.Class.Key(), spc.ProviderGCP, object, err)
}

func (p *Provider) classError(req provider.Request, reason provider.Reason, err error) error {
	return provider.Fail(req.Class.Key(), spc.ProviderGCP, "", provider.WithReason(reason, err))
}
