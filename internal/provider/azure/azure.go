// Package azure is the "azure" provider: it reads secrets, keys and
// certificates from Azure Key Vault with the Azure SDK for Go, taking the
// parameters of the upstream Azure Key Vault provider unchanged (see
// docs/providers/azure.md).
//
// The pod authenticates with Microsoft Entra Workload ID: its projected
// service-account token (audience api://AzureADTokenExchange) is the client
// assertion of a federated application or managed identity. A VM managed
// identity (the node's) is supported for classes that ask for it.
//
// Rotation is version-aware: Key Vault versions are immutable, so an object
// pinned to a version that is already written costs no call, an object that
// follows the latest version costs one GET, and a version history costs its
// listing pages plus one GET per version not yet written.
package azure

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// Options configure the provider. The zero value is what production uses.
type Options struct {
	// ClientOptions are the base options of every SDK client and
	// credential: tests set Transport (to trust their TLS server) and
	// Retry; production leaves them zero.
	ClientOptions azcore.ClientOptions
	// Getenv reads EnvAuthorityHost and EnvKeyVaultEndpoint; nil means
	// os.Getenv.
	Getenv func(string) string
	// OutsidePod is set where the fetching process is not the pod (the
	// node shim, the sync controller): a VM managed identity there is the
	// node's or the sync controller's own, so useVMManagedIdentity
	// classes are refused unless AllowProcessIdentity is set.
	OutsidePod bool
	// AllowProcessIdentity, with OutsidePod, lets useVMManagedIdentity
	// classes fetch with this process's managed identity for any tenant:
	// the operator's decision (builtin.Shared).
	AllowProcessIdentity bool
	// Files reads cloudEnvFileName: only a regular file, size-limited, and
	// in shared processes only under the operator's directory.
	Files limits.Files
	// MaxResponseBytes caps every response body of Microsoft Entra and Key
	// Vault; 0 means limits.Sizes{}.ResponseBytes().
	MaxResponseBytes int64
}

// Provider fetches Key Vault objects. It keeps SDK clients between fetches
// and is safe for concurrent use.
type Provider struct {
	opts  Options
	cache clientCache
}

// New returns the provider.
func New(opts Options) *Provider {
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = limits.Sizes{}.ResponseBytes()
	}
	opts.ClientOptions.Transport = limitedTransporter{base: sameHostTransport(opts.ClientOptions.Transport), max: opts.MaxResponseBytes}
	return &Provider{opts: opts}
}

// limitedTransporter limits every response body of the SDK's requests, so
// that a huge answer fails with limits.ErrTooLarge instead of being
// buffered whole.
type limitedTransporter struct {
	base policy.Transporter
	max  int64
}

var defaultHTTPClient = &http.Client{Transport: http.DefaultTransport}

func (t limitedTransporter) Do(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = defaultHTTPClient
	}
	resp, err := base.Do(req)
	if err != nil || resp == nil {
		return resp, err
	}
	// The error comes from the body, never from Do, which the SDK's retry
	// policy would retry as a transport failure.
	resp.Body = limits.Body(resp.Body, t.max, "the response of "+req.Method+" "+req.URL.Host)
	return resp, nil
}

// sameHostTransport makes the SDK's HTTP client follow redirects only to
// the same host (provider.CheckRedirect); the SDK's default client
// follows them anywhere. A test's *http.Client keeps its transport.
func sameHostTransport(t policy.Transporter) policy.Transporter {
	switch c := t.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		return provider.SameHostClient(&http.Client{Transport: tr})
	case *http.Client:
		return provider.SameHostClient(c)
	}
	return t
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return spc.ProviderAzure }

func (p *Provider) getenv(k string) string {
	if p.opts.Getenv != nil {
		return p.opts.Getenv(k)
	}
	return os.Getenv(k)
}

// Fetch implements provider.Provider.
func (p *Provider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	if req.Class == nil || req.Class.Azure == nil {
		return nil, &provider.Error{Provider: spc.ProviderAzure, Reason: provider.ReasonInvalidConfig, Err: errors.New("the class has no azure parameters")}
	}
	if len(req.Class.Azure.Objects) == 0 {
		// objects: "array: []": nothing to read, no credential needed.
		return nil, nil
	}
	vc, err := p.clientsFor(req)
	if err != nil {
		return nil, err
	}
	// Upstream ids are <type>/<name>: two objects of one name (say a
	// certificate's secret as PEM and as PFX) share an id. Versions
	// recorded under a shared id are ambiguous, so such objects are always
	// fetched in full.
	dup := duplicateIDs(req.Class.Azure.Objects)
	var out []provider.Object
	var errs []*provider.Error
	for i := range req.Class.Azure.Objects {
		o := &req.Class.Azure.Objects[i]
		req := req
		if dup[idKey(o)] {
			req.Current = nil
		}
		var objs []provider.Object
		if o.ObjectVersionHistory <= 1 && req.Kept(o.ID()) {
			// A certificate before its renewal point: its previous answer
			// stands.
			out = append(out, provider.Object{ID: o.ID(), Version: req.Current[o.ID()], Unchanged: true})
			continue
		}
		if o.ObjectVersionHistory > 1 {
			objs, err = p.fetchHistory(ctx, vc, req, o)
		} else {
			var obj provider.Object
			obj, err = p.fetchOne(ctx, vc, req, o, o.ID(), o.FileName, requestedVersion(o))
			objs = []provider.Object{obj}
		}
		if err != nil {
			// An object Key Vault does not have is reported with the
			// others (provider.Partial), so that an optional one can be
			// left out; any other failure ends the fetch.
			var pe *provider.Error
			if !errors.As(err, &pe) {
				return nil, err
			}
			errs = append(errs, pe)
			if pe.Reason != provider.ReasonNotFound {
				return provider.Partial(out, errs)
			}
			continue
		}
		out = append(out, objs...)
	}
	return provider.Partial(out, errs)
}

// HonoursKeep implements provider.Keeper: an object in Request.Keep (a
// certificate before its renewal point) is not read; objects with
// objectVersionHistory are always read.
func (p *Provider) HonoursKeep() bool { return true }

var _ provider.Keeper = (*Provider)(nil)

func idKey(o *spc.AzureObject) string {
	return fmt.Sprintf("%s\x00%t", o.ID(), o.ObjectVersionHistory > 1)
}

func duplicateIDs(objs []spc.AzureObject) map[string]bool {
	n := map[string]int{}
	for i := range objs {
		n[idKey(&objs[i])]++
	}
	dup := map[string]bool{}
	for k, c := range n {
		if c > 1 {
			dup[k] = true
		}
	}
	return dup
}

// requestedVersion is objectVersion, with "latest" meaning the newest.
func requestedVersion(o *spc.AzureObject) string {
	if strings.EqualFold(o.ObjectVersion, "latest") {
		return ""
	}
	return o.ObjectVersion
}

// fetchOne reads one version (version "" = latest) of o into file path.
func (p *Provider) fetchOne(ctx context.Context, vc *vaultClients, req provider.Request, o *spc.AzureObject, id, path, version string) (provider.Object, error) {
	cur := req.Current[id]
	if version != "" && cur == version {
		// Key Vault versions are immutable: what is written stands.
		return provider.Object{ID: id, Version: version, Unchanged: true}, nil
	}
	got, data, err := p.get(ctx, vc, o, version, cur)
	if err != nil {
		return provider.Object{}, p.objectError(req, id, err)
	}
	if got == cur {
		return provider.Object{ID: id, Version: got, Unchanged: true}, nil
	}
	return provider.Object{ID: id, Version: got, Files: []atomicdir.File{{Path: path, Mode: mode(o, req.Permission), ExactMode: o.ExactMode, Data: data}}}, nil
}

// get reads one version of an object and converts it to file content. When
// the version read equals cur it returns it with nil data.
func (p *Provider) get(ctx context.Context, vc *vaultClients, o *spc.AzureObject, version, cur string) (string, []byte, error) {
	what := fmt.Sprintf("get %s %q", o.ObjectType, o.ObjectName)
	if version != "" {
		what += fmt.Sprintf(" version %q", version)
	}
	switch o.ObjectType {
	case spc.AzureSecret:
		resp, err := vc.secrets.GetSecret(ctx, o.ObjectName, version, nil)
		if err != nil {
			return "", nil, classify(what, err)
		}
		if resp.ID == nil || resp.Value == nil {
			return "", nil, invalid(errors.New(what + ": the response has no id or value"))
		}
		got := resp.ID.Version()
		if got == cur {
			return got, nil, nil
		}
		ct := ""
		if resp.ContentType != nil {
			ct = *resp.ContentType
		}
		data, err := secretContent(o, *resp.Value, ct, resp.KID != nil)
		if err != nil {
			return "", nil, invalid(fmt.Errorf("%s: %w", what, err))
		}
		return got, data, nil
	case spc.AzureKey:
		resp, err := vc.keys.GetKey(ctx, o.ObjectName, version, nil)
		if err != nil {
			return "", nil, classify(what, err)
		}
		if resp.Key == nil || resp.Key.KID == nil {
			return "", nil, invalid(errors.New(what + ": the response has no key"))
		}
		got := resp.Key.KID.Version()
		if got == cur {
			return got, nil, nil
		}
		data, err := publicKeyPEM(resp.Key)
		if err != nil {
			return "", nil, invalid(fmt.Errorf("%s: %w", what, err))
		}
		return got, data, nil
	case spc.AzureCert:
		resp, err := vc.certs.GetCertificate(ctx, o.ObjectName, version, nil)
		if err != nil {
			return "", nil, classify(what, err)
		}
		if resp.ID == nil {
			return "", nil, invalid(errors.New(what + ": the response has no id"))
		}
		got := resp.ID.Version()
		if got == cur {
			return got, nil, nil
		}
		data, err := certificatePEM(resp.CER)
		if err != nil {
			return "", nil, invalid(fmt.Errorf("%s: %w", what, err))
		}
		return got, data, nil
	}
	return "", nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("objectType %q is not secret, key or cert", o.ObjectType))
}

// kvVersion is one listed version.
type kvVersion struct {
	id      string
	created time.Time
}

// fetchHistory writes the newest N enabled versions (from objectVersion
// when set) as <file>/0 (newest) … <file>/N-1. Versions already written
// are not read again.
func (p *Provider) fetchHistory(ctx context.Context, vc *vaultClients, req provider.Request, o *spc.AzureObject) ([]provider.Object, error) {
	versions, err := listVersions(ctx, vc, o)
	if err != nil {
		return nil, p.objectError(req, o.ID(), err)
	}
	start := 0
	if v := requestedVersion(o); v != "" {
		start = -1
		for i, kv := range versions {
			if kv.id == v {
				start = i
				break
			}
		}
		if start < 0 {
			return nil, p.objectError(req, o.ID(), provider.WithReason(provider.ReasonNotFound,
				fmt.Errorf("objectVersion %q is not an enabled version of %s %q", v, o.ObjectType, o.ObjectName)))
		}
	}
	if start >= len(versions) {
		return nil, p.objectError(req, o.ID(), provider.WithReason(provider.ReasonNotFound,
			fmt.Errorf("%s %q has no enabled version", o.ObjectType, o.ObjectName)))
	}
	end := start + int(o.ObjectVersionHistory)
	if end > len(versions) {
		end = len(versions)
	}
	var out []provider.Object
	for i, kv := range versions[start:end] {
		id := fmt.Sprintf("%s/%d", o.ID(), i)
		obj, err := p.fetchOne(ctx, vc, req, o, id, fmt.Sprintf("%s/%d", o.FileName, i), kv.id)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// listVersions lists the enabled versions of o, newest first. It reads
// properties only, never values.
func listVersions(ctx context.Context, vc *vaultClients, o *spc.AzureObject) ([]kvVersion, error) {
	what := fmt.Sprintf("list versions of %s %q", o.ObjectType, o.ObjectName)
	var out []kvVersion
	add := func(id string, enabled *bool, created *time.Time) {
		if id == "" || (enabled != nil && !*enabled) {
			return
		}
		v := kvVersion{id: id}
		if created != nil {
			v.created = *created
		}
		out = append(out, v)
	}
	switch o.ObjectType {
	case spc.AzureSecret:
		if err := eachPage(ctx, vc.secrets.NewListSecretPropertiesVersionsPager(o.ObjectName, nil), func(pg azsecretsPage) {
			for _, it := range pg.Value {
				if it == nil || it.ID == nil || it.Attributes == nil {
					continue
				}
				add(it.ID.Version(), it.Attributes.Enabled, it.Attributes.Created)
			}
		}); err != nil {
			return nil, classify(what, err)
		}
	case spc.AzureKey:
		if err := eachPage(ctx, vc.keys.NewListKeyPropertiesVersionsPager(o.ObjectName, nil), func(pg azkeysPage) {
			for _, it := range pg.Value {
				if it == nil || it.KID == nil || it.Attributes == nil {
					continue
				}
				add(it.KID.Version(), it.Attributes.Enabled, it.Attributes.Created)
			}
		}); err != nil {
			return nil, classify(what, err)
		}
	case spc.AzureCert:
		if err := eachPage(ctx, vc.certs.NewListCertificatePropertiesVersionsPager(o.ObjectName, nil), func(pg azcertsPage) {
			for _, it := range pg.Value {
				if it == nil || it.ID == nil || it.Attributes == nil {
					continue
				}
				add(it.ID.Version(), it.Attributes.Enabled, it.Attributes.Created)
			}
		}); err != nil {
			return nil, classify(what, err)
		}
	default:
		return nil, provider.WithReason(provider.ReasonInvalidConfig, fmt.Errorf("objectType %q is not secret, key or cert", o.ObjectType))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].created.After(out[j].created) })
	return out, nil
}

func eachPage[T any](ctx context.Context, pager *runtime.Pager[T], fn func(T)) error {
	for pager.More() {
		pg, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		fn(pg)
	}
	return nil
}

// mode is the object's filePermission, or the mount's default when it sets
// none; with ExactMode a zero permission stays 0000, as upstream writes it.
func mode(o *spc.AzureObject, def fs.FileMode) fs.FileMode {
	if o.FilePermission != 0 || o.ExactMode {
		return o.FilePermission
	}
	return def
}

func invalid(err error) error { return provider.WithReason(provider.ReasonInvalidContent, err) }

func (p *Provider) objectError(req provider.Request, id string, err error) error {
	return provider.Fail(req.Class.Key(), spc.ProviderAzure, id, err)
}

func (p *Provider) classError(req provider.Request, reason provider.Reason, err error) error {
	return provider.Fail(req.Class.Key(), spc.ProviderAzure, "", provider.WithReason(reason, err))
}

// Page types of the three list operations, named for eachPage.
type (
	azsecretsPage = azsecrets.ListSecretPropertiesVersionsResponse
	azkeysPage    = azkeys.ListKeyPropertiesVersionsResponse
	azcertsPage   = azcertificates.ListCertificatePropertiesVersionsResponse
)
