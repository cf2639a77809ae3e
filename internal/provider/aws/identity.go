package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
)

// Environment variables the provider reads itself; the SDK reads the
// rest (AWS_REGION, AWS_ENDPOINT_URL_*, the default credential chain).
const (
	envWebIdentityTokenFile = "AWS_WEB_IDENTITY_TOKEN_FILE" //nolint:gosec // a variable name, not a credential
	envContainerFullURI     = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
	envContainerTokenFile   = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" //nolint:gosec // a variable name, not a credential
)

// Identity modes, as documented.
const (
	modeIRSA        = "irsa"
	modePodIdentity = "pod-identity"
	modeDefault     = "default-chain"
)

// identityEntry is one AWS identity with its credentials cache, shared by
// every fetch (and region) of the same pod identity.
type identityEntry struct {
	key  string
	mode string
	// creds is nil in default-chain mode, where the SDK resolves them.
	creds  aws.CredentialsProvider
	tokens *tokenBox
}

// errNoPodIdentity refuses to lend the fetching process's own identity to a
// pod (see Options.OutsidePod).
var errNoPodIdentity = errors.New("the pod has no AWS identity: annotate its service account with eks.amazonaws.com/role-arn (IRSA) " +
	"or set parameters.usePodIdentity to \"true\" (EKS Pod Identity); this process's default credentials are the node's, not the pod's")

// tokenBox holds the token source of the latest fetch, so that cached
// credentials refresh with a current token (kubelet rotates them).
type tokenBox struct {
	identity.Latest
	// noEnvFile forbids the token-file fallback (Options.OutsidePod).
	noEnvFile bool
}

// token returns a token for audience from the pod's tokens, else from the
// file named by envFile (local mode and hand-made pods).
func (b *tokenBox) token(ctx context.Context, audience, envFile string) (string, error) {
	tok, err := b.Token(ctx, audience)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, identity.ErrNoToken) {
		return "", err
	}
	if f := os.Getenv(envFile); f != "" && !b.noEnvFile {
		tok, err := identity.ReadTokenFile(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", envFile, err)
		}
		return tok, nil
	}
	return "", fmt.Errorf("no service-account token for audience %q: project one for the pod (or set %s in local mode)", audience, envFile)
}

// identity returns the cached identity for the request, creating it.
func (p *Provider) identity(ctx context.Context, req provider.Request, region string) (*identityEntry, error) {
	a, pod := req.Class.AWS, req.Identity.Pod
	who := pod.Namespace + "/" + pod.ServiceAccount
	var key, mode string
	var endpoints []string
	switch {
	case a.UsePodIdentity:
		var err error
		if endpoints, err = podIdentityEndpoints(a.PreferredAddressType, p.opts); err != nil {
			return nil, &provider.Error{Class: req.Class.Key(), Provider: Name, Reason: provider.ReasonInvalidConfig, Err: err}
		}
		mode, key = modePodIdentity, modePodIdentity+"|"+who+"|"+strings.Join(endpoints, ",")
	case req.Identity.Cloud.AWSRoleARN != "":
		mode, key = modeIRSA, modeIRSA+"|"+who+"|"+req.Identity.Cloud.AWSRoleARN
	default:
		if p.opts.OutsidePod {
			return nil, &provider.Error{Class: req.Class.Key(), Provider: Name, Reason: provider.ReasonInvalidConfig,
				Err: fmt.Errorf("service account %s: %w", who, errNoPodIdentity)}
		}
		mode, key = modeDefault, modeDefault
	}

	p.mu.Lock()
	e := p.idents[key]
	p.mu.Unlock()
	if e == nil {
		e = &identityEntry{key: key, mode: mode, tokens: &tokenBox{noEnvFile: p.opts.OutsidePod}}
		switch mode {
		case modePodIdentity:
			e.creds = aws.NewCredentialsCache(&podIdentityCreds{endpoints: endpoints, client: p.podIdentityClient(), box: e.tokens},
				p.cacheOptions)
		case modeIRSA:
			// AssumeRoleWithWebIdentity is an unsigned call; the client
			// needs no credentials of its own.
			cfg, err := p.loadConfig(ctx, region, aws.AnonymousCredentials{})
			if err != nil {
				return nil, &provider.Error{Class: req.Class.Key(), Provider: Name, Reason: provider.ReasonInvalidConfig,
					Err: fmt.Errorf("load AWS configuration: %w", err)}
			}
			e.creds = aws.NewCredentialsCache(&webIdentityCreds{
				sts:     sts.NewFromConfig(cfg),
				role:    req.Identity.Cloud.AWSRoleARN,
				session: sessionName(pod),
				box:     e.tokens,
			}, p.cacheOptions)
		}
		p.mu.Lock()
		if prev := p.idents[key]; prev != nil {
			e = prev
		} else {
			p.idents[key] = e
		}
		p.mu.Unlock()
	}
	e.tokens.Set(req.Identity.Tokens)
	return e, nil
}

func (p *Provider) cacheOptions(o *aws.CredentialsCacheOptions) {
	o.ExpiryWindow = p.opts.CredentialExpiryWindow
}

// regionClients are the service clients of one identity in one region.
type regionClients struct {
	region string
	sm     smAPI
	ssm    ssmAPI
	// batchKey remembers whether BatchGetSecretValue is allowed, per
	// identity and region.
	batchKey string
}

func (p *Provider) regionClients(ctx context.Context, e *identityEntry, region string) (*regionClients, error) {
	key := e.key + "|" + region
	p.mu.Lock()
	c := p.clients[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	cfg, err := p.loadConfig(ctx, region, e.creds)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for region %s: %w", region, err)
	}
	if e.creds == nil {
		cfg.Credentials = markedCreds{cfg.Credentials}
	}
	c = &regionClients{region: region, sm: secretsmanager.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg), batchKey: key}
	p.mu.Lock()
	if prev := p.clients[key]; prev != nil {
		c = prev
	} else {
		p.clients[key] = c
	}
	p.mu.Unlock()
	return c, nil
}

// loadConfig loads the SDK configuration (environment, shared files,
// AWS_ENDPOINT_URL_* overrides) for a region; creds nil keeps the
// default credential chain.
func (p *Provider) loadConfig(ctx context.Context, region string, creds aws.CredentialsProvider) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				if p.opts.MaxAttempts > 0 {
					o.MaxAttempts = p.opts.MaxAttempts
				}
				if p.opts.MaxBackoff > 0 {
					o.MaxBackoff = p.opts.MaxBackoff
				}
			})
		}),
	}
	opts = append(opts, config.WithAPIOptions([]func(*middleware.Stack) error{limitBodies(p.opts.MaxResponseBytes)}))
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if p.opts.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(provider.SameHostClient(p.opts.HTTPClient)))
	}
	if creds != nil {
		opts = append(opts, config.WithCredentialsProvider(creds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, err
	}
	cfg.HTTPClient = sameHostSDKClient(cfg.HTTPClient)
	return cfg, nil
}

// sameHostSDKClient replaces the SDK's default client, which follows 307
// and 308 redirects to any host, with one on the same transport (with
// AWS_CA_BUNDLE applied) that follows redirects only to the same host.
func sameHostSDKClient(c aws.HTTPClient) aws.HTTPClient {
	switch bc := c.(type) {
	case nil:
		return provider.SameHostClient(&http.Client{Transport: awshttp.NewBuildableClient().GetTransport()})
	case *awshttp.BuildableClient:
		return provider.SameHostClient(&http.Client{Transport: bc.GetTransport(), Timeout: bc.GetTimeout()})
	}
	return c
}

// defaultRegion is the region of the environment (AWS_REGION, the shared
// config profile), used when the class names none. The process's
// environment does not change, so it is read once (loading the shared
// configuration reads files); a failure is not kept.
func (p *Provider) defaultRegion(ctx context.Context) (string, error) {
	p.mu.Lock()
	r := p.envRegion
	p.mu.Unlock()
	if r != nil {
		return *r, nil
	}
	cfg, err := p.loadConfig(ctx, "", aws.AnonymousCredentials{})
	if err != nil {
		return "", fmt.Errorf("load AWS configuration: %w", err)
	}
	p.mu.Lock()
	p.envRegion = &cfg.Region
	p.mu.Unlock()
	return cfg.Region, nil
}

// markedCreds marks failures of the default chain as credential failures.
type markedCreds struct{ aws.CredentialsProvider }

func (m markedCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialError{fmt.Errorf("default credential chain: %w", err)}
	}
	return c, nil
}

// webIdentityCreds is IRSA: the pod's token for sts.amazonaws.com is
// exchanged for the role's temporary credentials.
type webIdentityCreds struct {
	sts     *sts.Client
	role    string
	session string
	box     *tokenBox
}

func (w *webIdentityCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	tok, err := w.box.token(ctx, identity.AudienceAWSIRSA, envWebIdentityTokenFile)
	if err != nil {
		return aws.Credentials{}, &credentialError{fmt.Errorf("IRSA role %s: %w", w.role, err)}
	}
	out, err := w.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(w.role),
		RoleSessionName:  aws.String(w.session),
		WebIdentityToken: aws.String(tok),
	})
	if err != nil {
		return aws.Credentials{}, &credentialError{fmt.Errorf("STS AssumeRoleWithWebIdentity for role %s: %w", w.role, err)}
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.Expiration == nil {
		return aws.Credentials{}, &credentialError{fmt.Errorf("STS AssumeRoleWithWebIdentity for role %s returned no credentials", w.role)}
	}
	return aws.Credentials{
		AccessKeyID:     *c.AccessKeyId,
		SecretAccessKey: *c.SecretAccessKey,
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "ssi-irsa",
		CanExpire:       true,
		Expires:         *c.Expiration,
	}, nil
}

// podIdentityCreds asks the EKS Pod Identity agent (a container
// credentials endpoint) for credentials, authorised by the pod's token
// for pods.eks.amazonaws.com.
type podIdentityCreds struct {
	endpoints []string
	client    *http.Client
	box       *tokenBox
}

func (c *podIdentityCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	tok, err := c.box.token(ctx, identity.AudienceAWSPodIdentity, envContainerTokenFile)
	if err != nil {
		return aws.Credentials{}, &credentialError{fmt.Errorf("EKS Pod Identity: %w", err)}
	}
	var errs []error
	for _, ep := range c.endpoints {
		prov := endpointcreds.New(ep, func(o *endpointcreds.Options) {
			o.AuthorizationToken = tok
			o.HTTPClient = c.client
			o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), 2)
		})
		creds, err := prov.Retrieve(ctx)
		if err == nil {
			creds.Source = "ssi-pod-identity"
			return creds, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return aws.Credentials{}, &credentialError{fmt.Errorf("EKS Pod Identity agent: %w", errors.Join(errs...))}
}

func (p *Provider) podIdentityClient() *http.Client {
	c := &http.Client{Timeout: p.opts.PodIdentityTimeout, CheckRedirect: provider.CheckRedirect}
	if p.opts.HTTPClient != nil {
		c.Transport = p.opts.HTTPClient.Transport
	}
	return limits.Client(c, p.opts.MaxResponseBytes)
}

// limitBodies is an SDK middleware, innermost in the deserialize step so
// that it sees the raw response before any deserializer reads it: it limits
// the body to max bytes, so that a huge answer fails with
// limits.ErrTooLarge instead of being buffered.
func limitBodies(max int64) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("ssiLimitResponseBody", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if !ok || resp == nil || resp.Body == nil {
				return out, md, err
			}
			what := "the response of " + middleware.GetOperationName(ctx)
			if resp.ContentLength > max {
				_ = resp.Body.Close()
				resp.Body = http.NoBody
				return out, md, &limits.TooLargeError{What: what, Limit: max, Size: resp.ContentLength}
			}
			resp.Body = limits.Body(resp.Body, max, what)
			return out, md, err
		}), middleware.After)
	}
}

// podIdentityEndpoints returns the agent endpoints to try in order:
// AWS_CONTAINER_CREDENTIALS_FULL_URI when set, else by preferredAddressType
// (auto: IPv4 first, then IPv6, as upstream).
func podIdentityEndpoints(pref string, o Options) ([]string, error) {
	if u := os.Getenv(envContainerFullURI); u != "" {
		if err := checkContainerURI(u); err != nil {
			return nil, err
		}
		return []string{u}, nil
	}
	switch strings.ToLower(pref) {
	case "ipv4":
		return []string{o.PodIdentityIPv4URL}, nil
	case "ipv6":
		return []string{o.PodIdentityIPv6URL}, nil
	}
	return []string{o.PodIdentityIPv4URL, o.PodIdentityIPv6URL}, nil
}

// checkContainerURI applies the SDK's rule for a container credentials
// URI: the token travels in clear over http only to a loopback address or
// a container agent's link-local address.
func checkContainerURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s is not an absolute URL", envContainerFullURI)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil {
			if ip.IsLoopback() || ip.Equal(net.ParseIP("169.254.170.23")) || ip.Equal(net.ParseIP("fd00:ec2::23")) ||
				ip.Equal(net.ParseIP("169.254.170.2")) {
				return nil
			}
		}
		return fmt.Errorf("%s: http is only allowed to a loopback address or the EKS/ECS agent address, got host %q", envContainerFullURI, host)
	}
	return fmt.Errorf("%s: scheme must be http or https, got %q", envContainerFullURI, u.Scheme)
}

var sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName names the STS session after the pod so CloudTrail shows it.
func sessionName(pod identity.Pod) string {
	s := "ssi"
	if pod.Namespace != "" || pod.Name != "" {
		s += "-" + pod.Namespace + "." + pod.Name
	}
	s = sessionUnsafe.ReplaceAllString(s, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
