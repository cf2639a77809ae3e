// Package aws is the provider "aws": AWS Secrets Manager and SSM Parameter
// Store objects of a SecretProviderClass, fetched with the pod's own AWS
// identity (IRSA, EKS Pod Identity, or the SDK's default chain in local
// mode) and with the parameter semantics of the upstream AWS provider.
//
// Rotation is version-aware: an object whose backend version equals the
// version already written is answered Unchanged, and the calls that find
// this out are batched where the APIs allow (BatchGetSecretValue by 20,
// GetParameters by 10). Objects pinned by objectVersion are immutable and
// cost no call once written. docs/providers/aws.md lists the calls per
// cycle.
package aws

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
)

// Name is the spec.provider value this provider serves.
const Name = spc.ProviderAWS

// The EKS Pod Identity agent's link-local credential endpoints.
const (
	PodIdentityIPv4URL = "http://169.254.170.23/v1/credentials"
	PodIdentityIPv6URL = "http://[fd00:ec2::23]/v1/credentials"
)

// Options tune a Provider. The zero value is production behaviour.
type Options struct {
	// HTTPClient sends every AWS request (Secrets Manager, SSM, STS, the
	// Pod Identity agent). Nil means the SDK's default client. Either way
	// response bodies are limited to MaxResponseBytes (by an SDK
	// middleware, so that the SDK's own client, which AWS_CA_BUNDLE
	// needs, stays).
	HTTPClient *http.Client
	// MaxAttempts bounds SDK attempts per call, retries included; zero
	// means the SDK default (3).
	MaxAttempts int
	// MaxBackoff bounds the SDK's delay between retries; zero means the
	// SDK default (20s).
	MaxBackoff time.Duration
	// Concurrency bounds the calls in flight per fetch; zero means 8.
	Concurrency int
	// BatchReprobe is how long a BatchGetSecretValue that was denied is
	// not tried again for the same identity and region; zero means 1h.
	BatchReprobe time.Duration
	// CredentialExpiryWindow refreshes temporary credentials this long
	// before they expire; zero means 5m.
	CredentialExpiryWindow time.Duration
	// PodIdentityTimeout bounds one request to the Pod Identity agent;
	// zero means 5s.
	PodIdentityTimeout time.Duration
	// PodIdentityIPv4URL and PodIdentityIPv6URL replace the agent
	// endpoints (tests); empty means the link-local addresses.
	PodIdentityIPv4URL, PodIdentityIPv6URL string
	// Clock times the re-probe of BatchGetSecretValue after a denial; nil
	// is the real clock.
	Clock clock.WithTicker
	// OutsidePod is set where the fetching process is not the pod (the
	// node shim, the sync controller): its ambient credentials and token
	// files are its own, not the pod's, so a pod without IRSA or Pod
	// Identity is refused instead of being served with them, as upstream
	// refuses a service account without a role.
	OutsidePod bool
	// MaxResponseBytes caps every response body (Secrets Manager, SSM,
	// STS, the Pod Identity agent); 0 means limits.Sizes{}.ResponseBytes().
	MaxResponseBytes int64
}

// Provider fetches Secrets Manager secrets and SSM parameters. It is safe
// for concurrent use by many classes and identities (the node shim serves
// every pod of a node with one Provider).
type Provider struct {
	opts Options

	mu       sync.Mutex
	idents   map[string]*identityEntry
	clients  map[string]*regionClients
	batchOff map[string]time.Time
	// envRegion is the environment's region once read (see defaultRegion).
	envRegion *string
}

// New returns the provider "aws".
func New(opts Options) *Provider {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.BatchReprobe <= 0 {
		opts.BatchReprobe = time.Hour
	}
	if opts.CredentialExpiryWindow <= 0 {
		opts.CredentialExpiryWindow = 5 * time.Minute
	}
	if opts.PodIdentityTimeout <= 0 {
		opts.PodIdentityTimeout = 5 * time.Second
	}
	if opts.PodIdentityIPv4URL == "" {
		opts.PodIdentityIPv4URL = PodIdentityIPv4URL
	}
	if opts.PodIdentityIPv6URL == "" {
		opts.PodIdentityIPv6URL = PodIdentityIPv6URL
	}
	opts.Clock = schedule.Clock(opts.Clock)
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = limits.Sizes{}.ResponseBytes()
	}
	return &Provider{
		opts:     opts,
		idents:   map[string]*identityEntry{},
		clients:  map[string]*regionClients{},
		batchOff: map[string]time.Time{},
	}
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return Name }

// item is one entry of the class's objects list during one fetch.
type item struct {
	obj *spc.AWSObject
	// ids are the object IDs it produces: its file name, then one per
	// jmesPath entry (upstream reports each extracted file as an object).
	ids []string
	// current is the version already written for all of ids, or "" when
	// they are not all written at one version.
	current string

	res result
	// primaryErr keeps the primary region's failure when the failover
	// region is tried.
	primaryErr *callError
}

// result is what one region said about an item.
type result struct {
	done      bool
	version   string
	value     []byte
	unchanged bool
	err       *callError
}

// target is the backend object an item reads in one region.
type target struct {
	name, version, label string
}

func (it *item) target(failover bool) target {
	t := target{name: it.obj.ObjectName, version: it.obj.ObjectVersion, label: it.obj.ObjectVersionLabel}
	if f := it.obj.FailoverObject; failover && f != nil && f.ObjectName != "" {
		t = target{name: f.ObjectName, version: f.ObjectVersion, label: f.ObjectVersionLabel}
	}
	return t
}

// setValue records fetched content, or Unchanged when its version is the
// one already written.
func (it *item) setValue(version string, value []byte) {
	if version != "" && version == it.current {
		it.res = result{done: true, version: version, unchanged: true}
		return
	}
	it.res = result{done: true, version: version, value: value}
}

func (it *item) setUnchanged() {
	it.res = result{done: true, version: it.current, unchanged: true}
}

func (it *item) setErr(err *callError) { it.res = result{done: true, err: err} }

// Fetch implements provider.Provider.
func (p *Provider) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	if req.Class == nil || req.Class.AWS == nil {
		key := ""
		if req.Class != nil {
			key = req.Class.Key()
		}
		return nil, &provider.Error{Class: key, Provider: Name, Reason: provider.ReasonInvalidConfig,
			Err: errors.New("the class has no aws parameters")}
	}
	class, a := req.Class, req.Class.AWS
	if len(a.Objects) == 0 {
		// objects: "[]": nothing to read, no region or identity needed.
		return nil, nil
	}
	classErr := func(reason provider.Reason, err error) error {
		return &provider.Error{Class: class.Key(), Provider: Name, Reason: reason, Err: err}
	}

	region := a.Region
	if region == "" {
		var err error
		if region, err = p.defaultRegion(ctx); err != nil {
			return nil, classErr(provider.ReasonInvalidConfig, err)
		}
		if region == "" {
			return nil, classErr(provider.ReasonInvalidConfig,
				errors.New("no region: set parameters.region in the class or AWS_REGION in the environment"))
		}
	}
	if a.FailoverRegion != "" && a.FailoverRegion == region {
		return nil, classErr(provider.ReasonInvalidConfig,
			fmt.Errorf("failoverRegion %q is the same as the primary region", region))
	}

	items := make([]*item, 0, len(a.Objects))
	for i := range a.Objects {
		o := &a.Objects[i]
		if o.ARNRegion != "" && o.ARNRegion != region {
			return nil, &provider.Error{Class: class.Key(), Provider: Name, Object: o.FileName, Reason: provider.ReasonInvalidConfig,
				Err: fmt.Errorf("the ARN of objectName %q is in region %q, but the primary region is %q", o.ObjectName, o.ARNRegion, region)}
		}
		it := &item{obj: o, ids: []string{o.FileName}}
		for _, jp := range o.JMESPath {
			it.ids = append(it.ids, jp.FileName)
		}
		it.current = req.Current[it.ids[0]]
		for _, id := range it.ids[1:] {
			if req.Current[id] != it.current {
				it.current = ""
			}
		}
		// An object pinned by objectVersion is immutable: once written at
		// that version it needs no call.
		if o.ObjectVersion != "" && it.current == o.ObjectVersion {
			it.setUnchanged()
		}
		// A certificate before its renewal point (with the files cut from
		// the same secret by jmesPath): its previous answer stands.
		if it.current != "" && req.Kept(it.ids...) {
			it.setUnchanged()
		}
		items = append(items, it)
	}

	if allDone(items) {
		// Nothing to read: no credential needed.
		return assemble(class, req.Permission, items)
	}
	ident, err := p.identity(ctx, req, region)
	if err != nil {
		return nil, err
	}
	p.fetchRegion(ctx, ident, region, items, false)
	if a.FailoverRegion != "" {
		var retry []*item
		for _, it := range items {
			if it.res.err != nil && !it.res.err.fatal {
				it.primaryErr = it.res.err
				it.res = result{}
				retry = append(retry, it)
			}
		}
		if len(retry) > 0 {
			p.fetchRegion(ctx, ident, a.FailoverRegion, retry, true)
		}
	}
	return assemble(class, req.Permission, items)
}

func allDone(items []*item) bool {
	for _, it := range items {
		if !it.res.done {
			return false
		}
	}
	return true
}

// HonoursKeep implements provider.Keeper: an object whose ids (its file
// and its jmesPath files) are all in Request.Keep is not read.
func (p *Provider) HonoursKeep() bool { return true }

var _ provider.Keeper = (*Provider)(nil)

// fetchRegion resolves every pending item in one region.
func (p *Provider) fetchRegion(ctx context.Context, ident *identityEntry, region string, items []*item, failover bool) {
	var sm, ps []*item
	for _, it := range items {
		if it.res.done {
			continue
		}
		if it.obj.ObjectType == spc.AWSSSMParameter {
			ps = append(ps, it)
		} else {
			sm = append(sm, it)
		}
	}
	if len(sm) == 0 && len(ps) == 0 {
		return
	}
	cl, err := p.regionClients(ctx, ident, region)
	if err != nil {
		ce := &callError{region: region, reason: provider.ReasonInvalidConfig, fatal: true, err: err}
		for _, it := range append(sm, ps...) {
			it.setErr(ce)
		}
		return
	}
	var wg sync.WaitGroup
	if len(sm) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fetchSecrets(ctx, cl, sm, failover)
		}()
	}
	if len(ps) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fetchParameters(ctx, cl, ps, failover)
		}()
	}
	wg.Wait()
}

// assemble turns item results into objects in class order, with the
// failures in class order (provider.Partial: the first is the message, and
// an optional object AWS does not have can be left out).
func assemble(class *spc.Class, perm fs.FileMode, items []*item) ([]provider.Object, error) {
	var out []provider.Object
	var errs []*provider.Error
	for _, it := range items {
		o := it.obj
		if it.res.err != nil || !it.res.done {
			ce := it.res.err
			if ce == nil {
				ce = &callError{reason: provider.ReasonUnknown, err: errors.New("no result")}
			}
			errs = append(errs, &provider.Error{Class: class.Key(), Provider: Name, Object: o.FileName, Reason: ce.reason,
				Err: ce.withPrimary(it.primaryErr)})
			continue
		}
		// The files cut from one secret by jmesPath form one group: a
		// certificate and its key are renewed together.
		group := ""
		if len(o.JMESPath) > 0 {
			group = o.FileName
		}
		if it.res.unchanged {
			for _, id := range it.ids {
				out = append(out, provider.Object{ID: id, Version: it.res.version, Unchanged: true, Group: group})
			}
			continue
		}
		extracted, err := extract(o, it.res.value)
		if err != nil {
			errs = append(errs, &provider.Error{Class: class.Key(), Provider: Name, Object: o.FileName,
				Reason: provider.ReasonInvalidContent, Err: err})
			continue
		}
		out = append(out, provider.Object{ID: o.FileName, Version: it.res.version, Group: group,
			Files: []atomicdir.File{{Path: o.FileName, Mode: modeOr(o.FilePermission, o.ExactMode, perm), ExactMode: o.ExactMode, Data: it.res.value}}})
		for j, jp := range o.JMESPath {
			out = append(out, provider.Object{ID: jp.FileName, Version: it.res.version, Group: group,
				Files: []atomicdir.File{{Path: jp.FileName, Mode: modeOr(jp.FilePermission, jp.ExactMode, perm), ExactMode: jp.ExactMode, Data: extracted[j]}}})
		}
	}
	return provider.Partial(out, errs)
}

func modeOr(m fs.FileMode, exact bool, def fs.FileMode) fs.FileMode {
	if m != 0 || exact {
		return m
	}
	if def != 0 {
		return def
	}
	return atomicdir.DefaultMode
}
