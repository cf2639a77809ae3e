// Package plugin forwards fetches to an existing Secrets Store CSI Driver
// provider plugin (a provider DaemonSet) over the upstream v1alpha1 gRPC
// protocol, so that providers this project does not build in keep working
// behind the node shim.
//
// A plugin listens on "<dir>/<provider>.sock" in one of the provider
// directories. The client calls Version once per connection and then Mount
// with the same attributes, secrets, target path and permission the
// upstream driver sends, plus the object versions currently written.
//
// The protocol returns object versions and files as two unrelated lists.
// Files are attached to objects for reporting only (see Associate); the
// files written are always exactly the files returned, because a plugin
// object is never reported Unchanged.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// ProtocolVersion is the provider API version this client speaks.
const ProtocolVersion = "v1alpha1"

// Volume-context keys kubelet passes to a CSI driver (podInfoOnMount and
// tokenRequests); the plugin reads them from the attributes.
const (
	KeyPodName        = "csi.storage.k8s.io/pod.name"
	KeyPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	KeyPodUID         = "csi.storage.k8s.io/pod.uid"
	KeyServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	KeyTokens         = "csi.storage.k8s.io/serviceAccount.tokens" //nolint:gosec // a key name, not a credential
	KeyEphemeral      = "csi.storage.k8s.io/ephemeral"
)

// DefaultDirs are the directories searched for "<provider>.sock", in order:
// the upstream driver searches its additional provider paths before its
// provider volume.
var DefaultDirs = []string{"/etc/kubernetes/secrets-store-csi-providers", "/var/run/secrets-store-csi-providers"}

// Defaults for Options.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxRecvMsgSize = 4 << 20
)

// Options configure a Client.
type Options struct {
	// Dirs are searched in order for "<provider>.sock"; DefaultDirs when empty.
	Dirs []string
	// Timeout bounds one Mount call (including its retries); DefaultTimeout
	// when zero.
	Timeout time.Duration
	// MaxRecvMsgSize is the largest Mount response accepted, in bytes;
	// DefaultMaxRecvMsgSize when zero.
	MaxRecvMsgSize int
}

// serviceConfig retries a call a plugin could not take (its socket exists
// but nothing accepted yet, or it is restarting), as the upstream driver does.
const serviceConfig = `{"methodConfig": [{
  "name": [{"service": "v1alpha1.CSIDriverProvider"}],
  "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "10s",
    "backoffMultiplier": 1.1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`

// Client talks to one provider plugin. It is safe for concurrent use; the
// connection is made on first use and kept.
type Client struct {
	name string
	opts Options

	mu      sync.Mutex
	conn    *grpc.ClientConn
	socket  string
	rpc     v1alpha1.CSIDriverProviderClient
	runtime VersionInfo
}

// VersionInfo is what a plugin answers to Version.
type VersionInfo struct {
	Version        string
	RuntimeName    string
	RuntimeVersion string
}

// New returns a client for the plugin that serves provider name.
func New(name string, opts Options) (*Client, error) {
	if !spc.ValidProviderName(name) {
		return nil, fmt.Errorf("provider %q is not a valid plugin name (1 to 30 letters, digits, '-' or '_')", name)
	}
	if len(opts.Dirs) == 0 {
		opts.Dirs = DefaultDirs
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	return &Client{name: name, opts: opts}, nil
}

// Name implements provider.Provider.
func (c *Client) Name() string { return c.name }

// Close drops the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resetLocked()
}

func (c *Client) resetLocked() error {
	var err error
	if c.conn != nil {
		err = c.conn.Close()
	}
	c.conn, c.rpc, c.socket, c.runtime = nil, nil, "", VersionInfo{}
	return err
}

// Socket returns the socket path of the plugin, searching the directories
// in order.
func (c *Client) Socket() (string, error) {
	for _, d := range c.opts.Dirs {
		p := filepath.Join(d, c.name+".sock")
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == fs.ModeSocket {
			return p, nil
		}
	}
	return "", fmt.Errorf("provider plugin not found: no socket %s.sock in %s", c.name, strings.Join(c.opts.Dirs, ", "))
}

// connect returns a client for the current socket, dialling and asking the
// plugin's Version when there is no connection yet or the socket moved.
func (c *Client) connect(ctx context.Context) (v1alpha1.CSIDriverProviderClient, error) {
	sock, err := c.Socket()
	if err != nil {
		c.mu.Lock()
		_ = c.resetLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rpc != nil && c.socket == sock {
		return c.rpc, nil
	}
	_ = c.resetLocked()
	conn, err := grpc.NewClient("unix://"+sock,
		// The socket is protected by file-system permissions only, as upstream.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.opts.MaxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to provider plugin %s: %w", sock, err)
	}
	rpc := v1alpha1.NewCSIDriverProviderClient(conn)
	vctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	v, err := rpc.Version(vctx, &v1alpha1.VersionRequest{Version: ProtocolVersion})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("provider plugin %s: Version: %w", sock, err)
	}
	if v.GetVersion() != "" && v.GetVersion() != ProtocolVersion {
		_ = conn.Close()
		return nil, status.Errorf(codes.FailedPrecondition, "provider plugin %s speaks %q, this driver speaks %q", sock, v.GetVersion(), ProtocolVersion)
	}
	c.conn, c.rpc, c.socket = conn, rpc, sock
	c.runtime = VersionInfo{Version: v.GetVersion(), RuntimeName: v.GetRuntimeName(), RuntimeVersion: v.GetRuntimeVersion()}
	return rpc, nil
}

// Version returns what the plugin answered to Version on the current
// connection, connecting first when needed.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	if _, err := c.connect(ctx); err != nil {
		return VersionInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runtime, nil
}

// Mount is what the node shim knows about one volume beyond the class: the
// CSI volume context (the pod's volumeAttributes plus what kubelet adds),
// the NodePublishVolume secrets, and the target path.
type Mount struct {
	VolumeContext map[string]string
	Secrets       map[string]string
	TargetPath    string
}

// Bind returns a provider that forwards with the attributes of one volume,
// exactly as the upstream driver builds them.
func (c *Client) Bind(m Mount) provider.Provider { return &bound{c: c, m: m} }

type bound struct {
	c *Client
	m Mount
}

func (b *bound) Name() string { return b.c.name }

func (b *bound) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	return b.c.fetch(ctx, req, b.m)
}

// Fetch implements provider.Provider without a CSI volume: the attributes
// are the class parameters plus the pod keys from req.Identity. Tokens are
// not passed; plugins that need them must be reached through Bind.
func (c *Client) Fetch(ctx context.Context, req provider.Request) ([]provider.Object, error) {
	p := req.Identity.Pod
	vc := map[string]string{}
	for k, v := range map[string]string{KeyPodName: p.Name, KeyPodNamespace: p.Namespace, KeyPodUID: p.UID, KeyServiceAccount: p.ServiceAccount} {
		if v != "" {
			vc[k] = v
		}
	}
	return c.fetch(ctx, req, Mount{VolumeContext: vc})
}

// Attributes builds MountRequest.attributes as the upstream driver does:
// the class parameters, overlaid with every volume-context key, with the
// service-account tokens taken from the NodePublishVolume secrets when
// kubelet put them there (serviceAccountTokenInSecrets) and from the volume
// context otherwise.
func Attributes(params, volumeContext, secrets map[string]string) (string, error) {
	m := make(map[string]string, len(params)+len(volumeContext)+1)
	for k, v := range params {
		m[k] = v
	}
	for k, v := range volumeContext {
		m[k] = v
	}
	if t, ok := secrets[KeyTokens]; ok && t != "" {
		m[KeyTokens] = t
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Permission encodes a file mode as upstream does: the JSON of os.FileMode,
// i.e. its decimal value ("420" for 0644).
func Permission(mode fs.FileMode) string {
	b, _ := json.Marshal(mode)
	return string(b)
}

func (c *Client) fetch(ctx context.Context, req provider.Request, m Mount) ([]provider.Object, error) {
	class := req.Class.Key()
	fail := func(r provider.Reason, err error) error {
		return &provider.Error{Class: class, Provider: c.name, Reason: r, Err: err}
	}
	attrs, err := Attributes(req.Class.Parameters, m.VolumeContext, m.Secrets)
	if err != nil {
		return nil, fail(provider.ReasonInvalidConfig, fmt.Errorf("encode attributes: %w", err))
	}
	secrets, err := json.Marshal(m.Secrets)
	if err != nil {
		return nil, fail(provider.ReasonInvalidConfig, errors.New("encode NodePublishVolume secrets"))
	}
	perm := req.Permission
	if perm == 0 {
		perm = atomicdir.DefaultMode
	}
	ids := make([]string, 0, len(req.Current))
	for id := range req.Current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	current := make([]*v1alpha1.ObjectVersion, 0, len(ids))
	for _, id := range ids {
		current = append(current, &v1alpha1.ObjectVersion{Id: id, Version: req.Current[id]})
	}

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	rpc, err := c.connect(ctx)
	if err != nil {
		return nil, fail(reasonOf(err), err)
	}
	resp, err := rpc.Mount(ctx, &v1alpha1.MountRequest{
		Attributes:           attrs,
		Secrets:              string(secrets),
		TargetPath:           m.TargetPath,
		Permission:           Permission(perm),
		CurrentObjectVersion: current,
	})
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			// The plugin may have restarted on a new socket; dial again next time.
			c.mu.Lock()
			_ = c.resetLocked()
			c.mu.Unlock()
		}
		return nil, fail(reasonOf(err), fmt.Errorf("plugin Mount: %s", describe(err)))
	}
	if code := resp.GetError().GetCode(); code != "" {
		return nil, fail(reasonOfCode(code), fmt.Errorf("plugin Mount returned error code %q", code))
	}
	objs, err := Objects(resp)
	var pe *provider.Error
	if errors.As(err, &pe) {
		pe.Class, pe.Provider = class, c.name
	}
	return objs, err
}

// Objects turns a Mount response into objects: one per object version, in
// the order returned, with the response's files attached by Associate.
// Files are validated as the writer requires; when a path repeats, the last
// one wins, as upstream.
func Objects(resp *v1alpha1.MountResponse) ([]provider.Object, error) {
	if len(resp.GetObjectVersion()) == 0 {
		return nil, &provider.Error{Reason: provider.ReasonInvalidContent, Err: errors.New("the plugin returned no object versions")}
	}
	objs := make([]provider.Object, 0, len(resp.GetObjectVersion()))
	seenID := map[string]bool{}
	for _, ov := range resp.GetObjectVersion() {
		if ov.GetId() == "" {
			return nil, &provider.Error{Reason: provider.ReasonInvalidContent, Err: errors.New("the plugin returned an object version without an id")}
		}
		if seenID[ov.GetId()] {
			return nil, &provider.Error{Object: ov.GetId(), Reason: provider.ReasonInvalidContent, Err: errors.New("the plugin returned the object id twice")}
		}
		seenID[ov.GetId()] = true
		objs = append(objs, provider.Object{ID: ov.GetId(), Version: ov.GetVersion()})
	}
	byPath := map[string]int{}
	var files []atomicdir.File
	for _, f := range resp.GetFiles() {
		if err := atomicdir.ValidatePath(f.GetPath()); err != nil {
			return nil, &provider.Error{Reason: provider.ReasonInvalidContent, Err: fmt.Errorf("the plugin returned a file the volume cannot hold: %w", err)}
		}
		if f.GetMode() < 0 || f.GetMode() > 0o777 {
			return nil, &provider.Error{Reason: provider.ReasonInvalidContent, Err: fmt.Errorf("the plugin returned file %q with mode %d, outside 0..0777", f.GetPath(), f.GetMode())}
		}
		// ExactMode: a mode of 0 is written 0000, as the upstream driver
		// writes what the plugin returns (ZeroModeFiles lets the caller
		// warn).
		af := atomicdir.File{Path: f.GetPath(), Mode: fs.FileMode(uint32(f.GetMode()) & 0o777), ExactMode: true, Data: f.GetContents()} //nolint:gosec // range checked above
		if i, dup := byPath[af.Path]; dup {
			files[i] = af
			continue
		}
		byPath[af.Path] = len(files)
		files = append(files, af)
	}
	owner := Associate(objs, files)
	for i, f := range files {
		objs[owner[i]].Files = append(objs[owner[i]].Files, f)
	}
	return objs, nil
}

// ZeroModeFiles returns the paths, sorted, of the files of objs written
// with no permission at all (0000): a plugin's mode 0, which the upstream
// driver writes as is and no container but a root one can read.
func ZeroModeFiles(objs []provider.Object) []string {
	var out []string
	for _, o := range objs {
		for _, f := range o.Files {
			if f.ExactMode && f.Mode == 0 {
				out = append(out, f.Path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Associate says which object each file belongs to (an index into objs).
// The v1alpha1 response does not link files to object ids, so the rule is
// a best effort that matches the id schemes of the known providers:
//
//  1. the file path equals the id (aws and vault: the id is the file name);
//  2. the file lies under the id as a directory ("<id>/0");
//  3. the file path equals the last element of the id (azure without an
//     alias: id "secret/<name>", file "<name>");
//  4. otherwise the file goes to the first object.
//
// The association only affects reporting: all returned files are written.
func Associate(objs []provider.Object, files []atomicdir.File) []int {
	exact := make(map[string]int, len(objs))
	base := make(map[string]int, len(objs))
	for i := len(objs) - 1; i >= 0; i-- {
		exact[objs[i].ID] = i
		base[lastElem(objs[i].ID)] = i
	}
	out := make([]int, len(files))
	for fi, f := range files {
		if i, ok := exact[f.Path]; ok {
			out[fi] = i
			continue
		}
		best, bestLen := -1, 0
		for i, o := range objs {
			if strings.HasPrefix(f.Path, o.ID+"/") && len(o.ID) > bestLen {
				best, bestLen = i, len(o.ID)
			}
		}
		if best >= 0 {
			out[fi] = best
			continue
		}
		if i, ok := base[f.Path]; ok {
			out[fi] = i
			continue
		}
		out[fi] = 0
	}
	return out
}

func lastElem(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

// describe renders a gRPC error as code and message without the "rpc
// error:" prefix.
func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// reasonOf maps a gRPC status (or a local error) to a provider reason.
func reasonOf(err error) provider.Reason {
	s, ok := status.FromError(err)
	if !ok {
		// Socket missing or a dial failure: the plugin is not there.
		return provider.ReasonUnavailable
	}
	if s.Code() == codes.ResourceExhausted && strings.Contains(s.Message(), "larger than max") {
		// gRPC's own refusal of a response over MaxRecvMsgSize, not the
		// plugin throttling.
		return provider.ReasonInvalidContent
	}
	return provider.ReasonForGRPC(s.Code(), codeReasons)
}

// codeReasons are a plugin's exceptions to provider.ReasonForGRPC: the
// codes of the upstream plugin API's Mount mean what they say about the
// request or the plugin, not about a backend behind it.
var codeReasons = map[codes.Code]provider.Reason{
	// A parameter of the class outside what the plugin accepts, as
	// InvalidArgument.
	codes.OutOfRange: provider.ReasonInvalidConfig,
	// The Mount was cancelled (the plugin shutting down, or the fetch
	// cancelled): no verdict on the request, so a later attempt may
	// succeed.
	codes.Canceled: provider.ReasonUnavailable,
	// The plugin read content it cannot vouch for: the content, not the
	// plugin, is the problem.
	codes.DataLoss: provider.ReasonInvalidContent,
	// A plugin's Internal is its own failure and says nothing of whether
	// a retry helps, unlike the transient server error a cloud service
	// means by it.
	codes.Internal: provider.ReasonUnknown,
}

// reasonOfCode maps MountResponse.error.code, a free-form metrics code
// chosen by the plugin, to a reason by the words it contains.
func reasonOfCode(code string) provider.Reason {
	c := strings.ToLower(code)
	switch {
	case strings.Contains(c, "notfound") || strings.Contains(c, "not_found"):
		return provider.ReasonNotFound
	case strings.Contains(c, "denied") || strings.Contains(c, "forbidden") || strings.Contains(c, "permission"):
		return provider.ReasonAccessDenied
	case strings.Contains(c, "unauth") || strings.Contains(c, "token") || strings.Contains(c, "auth"):
		return provider.ReasonUnauthenticated
	case strings.Contains(c, "throttl") || strings.Contains(c, "ratelimit") || strings.Contains(c, "toomany"):
		return provider.ReasonThrottled
	case strings.Contains(c, "invalid") || strings.Contains(c, "config") || strings.Contains(c, "param"):
		return provider.ReasonInvalidConfig
	case strings.Contains(c, "unavailable") || strings.Contains(c, "timeout"):
		return provider.ReasonUnavailable
	}
	return provider.ReasonUnknown
}
