package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/volume"
)

// Volume-context keys.
const (
	// AttrTokens carries the service-account tokens kubelet requested for
	// the CSIDriver's tokenRequests (in the volume context, or in the
	// NodePublishVolume secrets with serviceAccountTokenInSecrets).
	AttrTokens = plugin.KeyTokens
)

// Event reasons recorded on pods. Messages name the class, object and
// cause, never a value.
const (
	ReasonClassNotFound     = "SecretProviderClassNotFound"
	ReasonClassInvalid      = "InvalidSecretProviderClass"
	ReasonBackendNotAllowed = "BackendNotAllowed" // the sync controller's reason for the same refusal
	ReasonMountFailed       = "FailedToMountSecrets"
	ReasonRotationFailed    = "SecretRotationFailed"
	ReasonRotationComplete  = "SecretRotationComplete"
	ReasonStatusWriteFailed = "FailedToRecordMountStatus"
)

// published is what the shim knows about one mounted volume.
type published struct {
	vol   *volume.Volume
	pod   identity.Pod
	class string // namespace/name
	// last is the time of the last fetch attempt (or, after a restart of
	// the shim, of the last write found on disk).
	last time.Time
	// recorded are the object versions last handed to the status recorder.
	recorded map[string]string
	// templates are the resolved templates vol renders, to tell a changed
	// declaration from an unchanged one (whose last render is reused).
	templates []render.Template
	// zeroModeWarned is set once the warning about files of mode 0000
	// has been logged for the volume.
	zeroModeWarned bool
}

// publishRequest is a validated NodePublishVolume request.
type publishRequest struct {
	target    string
	className string
	pod       identity.Pod
	tokens    identity.StaticTokens
	mount     plugin.Mount
}

func wrapBool(v bool) *wrapperspb.BoolValue { return wrapperspb.Bool(v) }

// validatePublish checks the request before anything is touched.
func (d *Driver) validatePublish(req *csi.NodePublishVolumeRequest) (*publishRequest, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	capability := req.GetVolumeCapability()
	if capability == nil {
		return nil, status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if capability.GetBlock() != nil {
		return nil, status.Error(codes.InvalidArgument, "block access is not supported: secrets volumes are file systems")
	}
	target, err := d.checkTarget(req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	vc := req.GetVolumeContext()
	if len(vc) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_context is empty: set volumeAttributes.secretProviderClass on the csi volume")
	}
	if !req.GetReadonly() {
		return nil, status.Error(codes.InvalidArgument, "the volume must be read-only: set readOnly: true on the csi volume")
	}
	pr := &publishRequest{target: target, className: vc[inject.ClassAttribute]}
	if pr.className == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volumeAttributes.%s is not set", inject.ClassAttribute)
	}
	pr.pod = identity.Pod{
		Namespace:      vc[plugin.KeyPodNamespace],
		Name:           vc[plugin.KeyPodName],
		UID:            vc[plugin.KeyPodUID],
		ServiceAccount: vc[plugin.KeyServiceAccount],
		NodeName:       d.opts.NodeID,
	}
	for key, v := range map[string]string{plugin.KeyPodNamespace: pr.pod.Namespace, plugin.KeyPodName: pr.pod.Name, plugin.KeyPodUID: pr.pod.UID} {
		if v == "" {
			return nil, status.Errorf(codes.InvalidArgument, "volume context has no %s: the CSIDriver object must set podInfoOnMount: true", key)
		}
	}
	raw := req.GetSecrets()[AttrTokens]
	if raw == "" {
		raw = vc[AttrTokens]
	}
	pr.tokens, err = identity.ParseCSITokens(raw)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	pr.mount = plugin.Mount{VolumeContext: vc, Secrets: req.GetSecrets(), TargetPath: target}
	return pr, nil
}

// checkTarget requires an absolute target inside the kubelet root dir
// (lexically; resolveTarget checks symbolic links before anything is
// created).
func (d *Driver) checkTarget(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", status.Errorf(codes.InvalidArgument, "target_path %q is not absolute", p)
	}
	target := filepath.Clean(p)
	if !within(d.opts.KubeletRootDir, target) {
		return "", status.Errorf(codes.InvalidArgument, "target_path %q is not inside the kubelet root dir %s", p, d.opts.KubeletRootDir)
	}
	return target, nil
}

// resolveTarget requires the nearest existing parent of target to stay
// inside the kubelet root dir once symbolic links are resolved.
func (d *Driver) resolveTarget(target string) error {
	root := d.opts.KubeletRootDir
	for dir := filepath.Dir(target); within(root, dir); dir = filepath.Dir(dir) {
		real, err := realPath(dir)
		if err != nil {
			continue // not there yet; check the next existing parent
		}
		if !within(d.realRoot, real) && !within(root, real) {
			return status.Errorf(codes.InvalidArgument, "target_path %q resolves outside the kubelet root dir %s", target, root)
		}
		return nil
	}
	return nil
}

// checkTargetDir refuses a target that exists and is not a plain
// directory. mount(2) follows a symbolic link planted at the target
// itself, so the tmpfs, and the tenant's secrets, would land wherever it
// points; resolveTarget only checks the parents.
func checkTargetDir(target string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return status.Errorf(codes.Internal, "inspect target_path %s: %v", target, err)
	case fi.Mode()&os.ModeSymlink != 0:
		return status.Errorf(codes.FailedPrecondition, "target_path %q is a symbolic link; the shim mounts only on a plain directory", target)
	case !fi.IsDir():
		return status.Errorf(codes.FailedPrecondition, "target_path %q is not a directory (file type %v); the shim mounts only on a plain directory", target, fi.Mode().Type())
	}
	return nil
}

// realPath resolves dir with one open and one readlink of /proc/self/fd,
// cheaper than resolving every component, or else with EvalSymlinks.
func realPath(dir string) (string, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer func() { _ = unix.Close(fd) }()
	if real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil && filepath.IsAbs(real) {
		return real, nil
	}
	return filepath.EvalSymlinks(dir)
}

// within reports whether p is strictly inside dir (both clean).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// NodePublishVolume implements csi.NodeServer.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	start := d.deps.Clock.Now()
	pr, err := d.validatePublish(req)
	if err != nil {
		d.metrics.publish.WithLabelValues("", "invalid").Inc()
		return nil, err
	}
	unlock := d.locks.lock(pr.target)
	defer unlock()

	d.mu.Lock()
	pv := d.vols[pr.target]
	d.mu.Unlock()

	if pv != nil {
		if !d.opts.EnableRotation || start.Sub(pv.last) < d.opts.RotationPollInterval {
			// A republish inside the interval: nothing but this lookup.
			d.metrics.publish.WithLabelValues("", "skipped").Inc()
			return &csi.NodePublishVolumeResponse{}, nil
		}
	}
	if err := d.resolveTarget(pr.target); err != nil {
		d.metrics.publish.WithLabelValues("", "invalid").Inc()
		return nil, err
	}
	if err := checkTargetDir(pr.target); err != nil {
		d.metrics.publish.WithLabelValues("", "invalid").Inc()
		return nil, err
	}
	mounted, err := d.deps.Mounter.IsMountPoint(pr.target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "check mount point %s: %v", pr.target, err)
	}
	if mounted {
		if pv == nil {
			// Mounted before the shim (re)started: adopt it, timing the
			// next fetch from the last write found there.
			pv = &published{pod: pr.pod, class: pr.pod.Namespace + "/" + pr.className, last: lastWrite(pr.target)}
			if !d.opts.EnableRotation || start.Sub(pv.last) < d.opts.RotationPollInterval {
				d.store(pr.target, pv)
				d.metrics.publish.WithLabelValues("", "skipped").Inc()
				return &csi.NodePublishVolumeResponse{}, nil
			}
		}
		d.republish(ctx, pr, pv)
		d.store(pr.target, pv)
		d.metrics.publishSeconds.WithLabelValues("republish").Observe(d.deps.Clock.Now().Sub(start).Seconds())
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if pv != nil {
		// Known but no longer mounted (unmounted behind the shim's back):
		// start over.
		d.mu.Lock()
		delete(d.vols, pr.target)
		d.mu.Unlock()
	}
	if err := d.firstPublish(ctx, pr); err != nil {
		return nil, err
	}
	d.metrics.publishSeconds.WithLabelValues("first").Observe(d.deps.Clock.Now().Sub(start).Seconds())
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *Driver) store(target string, pv *published) {
	d.mu.Lock()
	d.vols[target] = pv
	d.mu.Unlock()
}

// lastWrite is the time "..data" was last swapped in dir, or zero.
func lastWrite(dir string) time.Time {
	fi, err := os.Lstat(filepath.Join(dir, atomicdir.DataDir))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// firstPublish mounts, fetches and writes; on failure it unmounts what it
// mounted, so kubelet's retry starts clean.
func (d *Driver) firstPublish(ctx context.Context, pr *publishRequest) error {
	class, tpls, err := d.loadClass(ctx, pr)
	if err != nil {
		return err
	}
	p, err := d.providerFor(class, pr.mount)
	if err != nil {
		d.eventf(pr.pod, corev1.EventTypeWarning, ReasonMountFailed, "%v", err)
		d.metrics.publish.WithLabelValues(class.Provider, string(provider.ReasonInvalidConfig)).Inc()
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	// Kubelet creates the parent; the target is the shim's to create.
	if err := os.Mkdir(pr.target, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		if err := os.MkdirAll(pr.target, 0o750); err != nil {
			return status.Errorf(codes.Internal, "create target %s: %v", pr.target, err)
		}
	}
	// Again right before mounting: what was there may have been replaced.
	if err := checkTargetDir(pr.target); err != nil {
		return err
	}
	if err := d.deps.Mounter.MountTmpfs(pr.target); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	vol := &volume.Volume{Class: class, Dir: pr.target, Permission: atomicdir.DefaultMode, Sizes: d.opts.Limits.Sizes, Templates: tpls.set, Secrets: publishSecrets(pr.mount.Secrets),
		Log: d.log.With("pod", pr.pod.Namespace+"/"+pr.pod.Name)}
	id := identity.Identity{Pod: pr.pod, Cloud: d.identityOf(ctx, class, pr).Cloud, Tokens: d.tokensOf(class, pr)}
	res, err := vol.Refresh(ctx, p, id)
	if err != nil && !res.Write.Swapped {
		if uerr := d.deps.Mounter.Unmount(pr.target); uerr != nil {
			d.log.Error("unmount after a failed publish", "target", pr.target, "err", uerr)
		}
		reason := provider.ReasonOf(err)
		d.metrics.publish.WithLabelValues(class.Provider, string(reason)).Inc()
		d.eventf(pr.pod, corev1.EventTypeWarning, ReasonMountFailed, "%v", err)
		d.log.Warn("publish failed", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "class", class.Key(), "provider", class.Provider, "reason", reason, "err", err)
		return status.Error(codeOf(reason), err.Error())
	}
	if err != nil {
		// Published, but a user-visible name could not be fixed up; the
		// next write repairs it.
		d.log.Warn("files published with an error", "class", class.Key(), "target", pr.target, "err", err)
	}
	pv := &published{vol: vol, pod: pr.pod, class: class.Key(), last: d.deps.Clock.Now(), templates: tpls.list}
	d.warnZeroMode(pv, res.Objects)
	d.recordStatus(pr, pv, res.Objects)
	d.store(pr.target, pv)
	d.metrics.publish.WithLabelValues(class.Provider, "ok").Inc()
	d.log.Info("published", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "class", class.Key(), "provider", class.Provider, "objects", len(res.Objects), "target", pr.target)
	return nil
}

// warnZeroMode logs, once per volume, the files a provider plugin returned
// with mode 0: they are written 0000, as the upstream driver writes them,
// so only a root container can read them.
func (d *Driver) warnZeroMode(pv *published, objs []provider.Object) {
	if pv.zeroModeWarned {
		return
	}
	if files := plugin.ZeroModeFiles(objs); len(files) > 0 {
		pv.zeroModeWarned = true
		d.log.Warn("the provider plugin returned files with mode 0; they are written 0000 as the upstream driver writes them, readable by root only (set the class's file permission)",
			"pod", pv.pod.Namespace+"/"+pv.pod.Name, "class", pv.class, "files", files)
	}
}

// republish refreshes a mounted volume. Whatever fails, the published files
// stay and the call succeeds, so kubelet never tears the volume down.
func (d *Driver) republish(ctx context.Context, pr *publishRequest, pv *published) {
	pv.last = d.deps.Clock.Now()
	pv.pod = pr.pod
	class, tpls, err := d.getClass(ctx, pr)
	if err != nil {
		d.rotationFailed(pr, pv, "", err)
		return
	}
	if pv.vol == nil || pv.vol.Class.Key() != class.Key() || pv.vol.Class.Provider != class.Provider || !maps.Equal(pv.vol.Class.Parameters, class.Parameters) ||
		!maps.Equal(pv.vol.Class.Annotations, class.Annotations) {
		// First refresh after a restart, or the class changed: fetch all.
		pv.vol = &volume.Volume{Class: class, Dir: pr.target, Permission: atomicdir.DefaultMode, Sizes: d.opts.Limits.Sizes, Templates: tpls.set,
			Log: d.log.With("pod", pr.pod.Namespace+"/"+pr.pod.Name)}
		pv.templates = tpls.list
	} else if !slices.Equal(pv.templates, tpls.list) {
		// The templates changed: render every one from the new set.
		pv.vol.Templates, pv.templates = tpls.set, tpls.list
	}
	pv.class = class.Key()
	p, err := d.providerFor(class, pr.mount)
	if err != nil {
		d.rotationFailed(pr, pv, class.Provider, err)
		return
	}
	// Kubelet sends the nodePublishSecretRef Secret with every call: a
	// rotated Secret is used from the next refresh on.
	pv.vol.Secrets = publishSecrets(pr.mount.Secrets)
	id := identity.Identity{Pod: pr.pod, Cloud: d.identityOf(ctx, class, pr).Cloud, Tokens: d.tokensOf(class, pr)}
	res, err := pv.vol.Refresh(ctx, p, id)
	if err != nil && !res.Write.Swapped {
		d.rotationFailed(pr, pv, class.Provider, err)
		return
	}
	d.warnZeroMode(pv, res.Objects)
	if err != nil {
		d.log.Warn("files published with an error", "class", class.Key(), "target", pr.target, "err", err)
	}
	if res.Write.Swapped {
		d.metrics.rotations.WithLabelValues(class.Provider, "changed").Inc()
		names := append(append([]string{}, res.Write.Changed...), res.Write.Removed...)
		sort.Strings(names)
		d.eventf(pr.pod, corev1.EventTypeNormal, ReasonRotationComplete, "SecretProviderClass %s: rotated %s", class.Key(), strings.Join(names, ", "))
		d.log.Info("rotated", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "class", class.Key(), "changed", res.Write.Changed, "removed", res.Write.Removed)
	} else {
		d.metrics.rotations.WithLabelValues(class.Provider, "unchanged").Inc()
	}
	d.recordStatus(pr, pv, res.Objects)
}

func (d *Driver) rotationFailed(pr *publishRequest, pv *published, providerName string, err error) {
	reason := provider.ReasonOf(err)
	var ce *classError
	if errors.As(err, &ce) {
		reason = provider.ReasonInvalidConfig
	}
	d.metrics.rotations.WithLabelValues(providerName, "error:"+string(reason)).Inc()
	d.eventf(pr.pod, corev1.EventTypeWarning, ReasonRotationFailed, "%v; the files published before stay", err)
	d.log.Warn("rotation failed; keeping the published files", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "class", pv.class, "reason", reason, "err", err)
}

// providerFor returns the built-in provider of the class, or its plugin
// bound to this volume.
func (d *Driver) providerFor(c *spc.Class, m plugin.Mount) (provider.Provider, error) {
	if p, ok := d.opts.Providers[c.Provider]; ok && !d.routed[c.Provider] {
		return p, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	pc := d.plugins[c.Provider]
	if pc == nil {
		var err error
		pc, err = plugin.New(c.Provider, plugin.Options{Dirs: d.opts.ProviderDirs, Timeout: d.opts.PluginTimeout, MaxRecvMsgSize: d.opts.MaxCallRecvMsgSize})
		if err != nil {
			return nil, fmt.Errorf("SecretProviderClass %s: %w", c.Key(), err)
		}
		d.plugins[c.Provider] = pc
	}
	return pc.Bind(m), nil
}

// codeOf maps a provider failure to the gRPC code NodePublishVolume
// returns. All of them are final for kubelet except Unavailable and
// ResourceExhausted, after which it also calls NodeUnpublishVolume.
func codeOf(r provider.Reason) codes.Code {
	switch r {
	case provider.ReasonNotFound:
		return codes.NotFound
	case provider.ReasonAccessDenied:
		return codes.PermissionDenied
	case provider.ReasonUnauthenticated:
		return codes.Unauthenticated
	case provider.ReasonThrottled:
		return codes.ResourceExhausted
	case provider.ReasonUnavailable:
		return codes.Unavailable
	case provider.ReasonInvalidConfig:
		return codes.FailedPrecondition
	}
	return codes.Internal
}

// recordStatus hands the SecretProviderClassPodStatus to the recorder when
// the object versions differ from what was last recorded.
func (d *Driver) recordStatus(pr *publishRequest, pv *published, objs []provider.Object) {
	versions := provider.Versions(objs)
	if pv.recorded != nil && maps.Equal(pv.recorded, versions) {
		return
	}
	pv.recorded = versions
	if d.deps.Status == nil {
		return
	}
	d.deps.Status.Record(NewPodStatus(pr.pod, pr.className, pr.target, d.opts.NodeID, versions))
}

// NodeUnpublishVolume implements csi.NodeServer: unmount and remove the
// target; a target already gone is success.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	target, err := d.checkTarget(req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	if err := d.resolveTarget(target); err != nil {
		return nil, err
	}
	unlock := d.locks.lock(target)
	defer unlock()

	d.mu.Lock()
	pv := d.vols[target]
	delete(d.vols, target)
	lastOfPod := pv != nil && !d.hasPodLocked(pv.pod.UID)
	d.mu.Unlock()
	if pv != nil && d.deps.Status != nil {
		d.deps.Status.Drop(pv.pod.Namespace, PodStatusName(pv.pod.Name, pv.pod.Namespace, className(pv.class)))
	}
	if lastOfPod {
		d.forgetPod(pv.pod.UID)
	}
	// Stacked mounts (a crash between two publishes) are all removed.
	for i := 0; ; i++ {
		mounted, err := d.deps.Mounter.IsMountPoint(target)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "check mount point %s: %v", target, err)
		}
		if !mounted {
			break
		}
		if i == 10 {
			return nil, status.Errorf(codes.Internal, "%s is still mounted after 10 unmounts", target)
		}
		if err := d.deps.Mounter.Unmount(target); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
	}
	// Not a mount point any more: what is left is the directory kubelet
	// asked for (and anything written into it while unmounted).
	if err := os.RemoveAll(target); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOENT) {
		return nil, status.Errorf(codes.Internal, "remove %s: %v", target, err)
	}
	d.log.Info("unpublished", "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// podForgetter is a built-in provider that keeps state per pod between
// fetches (the Vault provider's tokens and leases).
type podForgetter interface {
	ForgetPod(uid string)
}

// hasPodLocked reports whether a volume of the pod with this UID is still
// published; d.mu is held.
func (d *Driver) hasPodLocked(uid string) bool {
	for _, pv := range d.vols {
		if pv.pod.UID == uid {
			return true
		}
	}
	return false
}

// forgetPod tells the built-in providers that the pod's last volume is
// gone, so they drop what they keep for it now rather than after their
// idle timeout.
func (d *Driver) forgetPod(uid string) {
	for _, name := range d.opts.Providers.Names() {
		if f, ok := d.opts.Providers[name].(podForgetter); ok {
			f.ForgetPod(uid)
		}
	}
}

func className(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// eventf records an event on the pod.
func (d *Driver) eventf(pod identity.Pod, eventType, reason, format string, args ...any) {
	if d.deps.Events == nil {
		return
	}
	ref := &corev1.Pod{}
	ref.Namespace, ref.Name, ref.UID = pod.Namespace, pod.Name, types.UID(pod.UID)
	d.deps.Events.Eventf(ref, eventType, reason, format, args...)
}
