package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider/plugin"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// ClassNotFoundMessage is the upstream driver's message for a class
// missing from the pod's namespace: "failed to get secretproviderclass
// NS/NAME, error: " and the API error, whose text is
// `secretproviderclasses.secrets-store.csi.x-k8s.io "NAME" not found`.
func ClassNotFoundMessage(namespace, name string, err error) string {
	return fmt.Sprintf("failed to get secretproviderclass %s/%s, error: %v", namespace, name, err)
}

// classError is a failure to obtain a usable class, with the event reason
// and gRPC code it maps to.
type classError struct {
	reason string
	code   codes.Code
	err    error
}

func (e *classError) Error() string { return e.err.Error() }
func (e *classError) Unwrap() error { return e.err }

// getClass reads the class named by the volume from the pod's namespace,
// and only from there, parses it and checks the backend address it names
// against the operator's list, before anything is fetched for it.
//
// It also resolves the class's templates (render.Annotation), reading the
// ConfigMaps they name from the pod's namespace with the API reader, and
// compiles them as admission does.
func (d *Driver) getClass(ctx context.Context, pr *publishRequest) (*spc.Class, *classTemplates, error) {
	key := client.ObjectKey{Namespace: pr.pod.Namespace, Name: pr.className}
	obj := &ssiv1.SecretProviderClass{}
	err := d.deps.Classes.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && d.deps.APIReader != nil {
		// The cache may not have seen a class created just before the pod.
		err = d.deps.APIReader.Get(ctx, key, obj)
	}
	switch {
	case apierrors.IsNotFound(err):
		// The upstream driver's words first: runbooks and alerts match
		// them in the FailedMount event (its e2e tests grep for
		// "failed to get secretproviderclass NS/NAME.*not found").
		nf := apierrors.NewNotFound(schema.GroupResource{Group: ssiv1.GroupVersion.Group, Resource: "secretproviderclasses"}, pr.className)
		return nil, nil, &classError{ReasonClassNotFound, codes.FailedPrecondition,
			fmt.Errorf("%s; classes are read from the pod's namespace only", ClassNotFoundMessage(pr.pod.Namespace, pr.className, nf))}
	case err != nil:
		return nil, nil, &classError{ReasonMountFailed, codes.Unavailable,
			fmt.Errorf("read SecretProviderClass %s/%s: %w", pr.pod.Namespace, pr.className, err)}
	}
	c, err := d.parseClass(obj)
	if err != nil {
		return nil, nil, &classError{ReasonClassInvalid, codes.FailedPrecondition, err}
	}
	if err := d.opts.AllowedBackendHosts.CheckClass(c); err != nil {
		return nil, nil, &classError{ReasonBackendNotAllowed, codes.FailedPrecondition,
			fmt.Errorf("%w; the node shim's list is the Helm value linux.allowedBackendHosts", err)}
	}
	var get render.ConfigMapGetter
	if d.deps.APIReader != nil {
		get = scheme.ConfigMapKeys(ctx, d.deps.APIReader, obj.Namespace)
	}
	list, set, err := c.Templates(obj.Annotations[render.Annotation], get)
	if err != nil {
		return nil, nil, &classError{ReasonClassInvalid, codes.FailedPrecondition, fmt.Errorf("SecretProviderClass %s: %w", c.Key(), err)}
	}
	if set != nil {
		set.SetMaxOutput(d.opts.Limits.Object())
	}
	return c, &classTemplates{list: list, set: set}, nil
}

// classTemplates are a class's resolved templates and their compiled set
// (nil when it declares none).
type classTemplates struct {
	list []render.Template
	set  *render.Set
}

// parseClass parses a class; a class routed to a plugin keeps its
// parameters untyped, because they are the plugin's to interpret.
func (d *Driver) parseClass(obj *ssiv1.SecretProviderClass) (*spc.Class, error) {
	name := string(obj.Spec.Provider)
	if d.routed[name] {
		if !spc.ValidProviderName(name) {
			return nil, &spc.Error{Class: obj.Namespace + "/" + obj.Name, Provider: name, Field: "spec.provider", Problem: "is not a valid provider name"}
		}
		return &spc.Class{Namespace: obj.Namespace, Name: obj.Name, Provider: name,
			Parameters: obj.Spec.Parameters, SecretObjects: obj.Spec.SecretObjects}, nil
	}
	return spc.Parse(obj)
}

// loadClass is getClass for a first publish: failures become an event on
// the pod and a gRPC error.
func (d *Driver) loadClass(ctx context.Context, pr *publishRequest) (*spc.Class, *classTemplates, error) {
	c, t, err := d.getClass(ctx, pr)
	if err == nil {
		return c, t, nil
	}
	var ce *classError
	errors.As(err, &ce)
	d.eventf(pr.pod, corev1.EventTypeWarning, ce.reason, "%v", err)
	d.metrics.publish.WithLabelValues("", ce.reason).Inc()
	d.log.Warn("publish failed", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "reason", ce.reason, "err", err)
	return nil, nil, status.Error(ce.code, err.Error())
}

// metaEntry is the annotations of a service account or pod, as read at.
type metaEntry struct {
	annotations map[string]string
	known       bool
	at          time.Time
}

// saTTL is how long service-account and pod annotations are reused.
const saTTL = time.Minute

// identityOf decides the volume's identity with identity.Decide, as the
// webhook decides it for the agent: from the class, the service account's
// annotations, the pod's annotations (read for GCP classes only, the one
// provider a pod annotation concerns) and the shim's defaults
// (--gcp-workload-identity-provider).
func (d *Driver) identityOf(ctx context.Context, c *spc.Class, pr *publishRequest) identity.Decision {
	pod := pr.pod
	sa, known := d.annotations(ctx, &corev1.ServiceAccount{}, pod.Namespace, pod.ServiceAccount, "")
	src := identity.Sources{
		ServiceAccount:            pod.ServiceAccount,
		ServiceAccountKnown:       known,
		ServiceAccountAnnotations: sa,
		NodePublishSecret:         nodePublishSecret(pr.mount.Secrets),
		Defaults: identity.Defaults{
			GCPWorkloadIdentityProvider: d.opts.GCPWorkloadIdentityProvider,
			// The audiences kubelet sent tokens for are the CSIDriver's
			// tokenRequests: what a Vault class's audience is decided from.
			TokenRequests: slices.Sorted(maps.Keys(pr.tokens)),
		},
	}
	if c.GCP != nil {
		src.PodAnnotations, _ = d.annotations(ctx, &corev1.Pod{}, pod.Namespace, pod.Name, pod.UID)
	}
	dec := identity.Decide(c, src)
	for _, w := range dec.Warnings {
		d.log.Debug("identity", "pod", pod.Namespace+"/"+pod.Name, "class", c.Key(), "warning", w)
	}
	return dec
}

// mintedTokenTTL is the lifetime of a token the shim requests for a Vault
// login, vault-csi-provider's.
const mintedTokenTTL = 15 * time.Minute

// tokensOf is the token source of a volume of class c: kubelet's tokens,
// and for a Vault class a token the shim requests with the TokenRequest
// API, bound to the pod, for an audience kubelet sent none for (the
// class's audience, or the API server's default when it sets none and
// the tokenRequests do not include "vault"), as vault-csi-provider does.
// Only the built-in Vault provider asks for a token it may lack; the
// other providers' audiences are the CSIDriver's tokenRequests.
func (d *Driver) tokensOf(c *spc.Class, pr *publishRequest) identity.TokenSource {
	if c.Vault == nil || d.deps.Tokens == nil {
		return pr.tokens
	}
	pod := pr.pod
	mint := identity.FuncTokens(func(ctx context.Context, audience string) (string, error) {
		d.log.Debug("kubelet sent no token for the Vault audience; requesting one", "pod", pod.Namespace+"/"+pod.Name, "class", c.Key(), "audience", identity.AudienceName(audience))
		return identity.Mint(ctx, d.deps.Tokens, identity.MintRequest{
			Namespace: pod.Namespace, ServiceAccount: pod.ServiceAccount, Audience: audience,
			Expiration: mintedTokenTTL, PodName: pod.Name, PodUID: pod.UID,
		})
	})
	return identity.Fallback{First: pr.tokens, Then: mint}
}

// VolumeIdentity is the cloud identity the shim fetches a volume of class
// c for pod with, secrets being the request's NodePublishVolume secrets:
// what identityOf decides during a publish. It exists as a seam for the
// three-caller agreement test (internal/secretsync), which compares it
// with the webhook's and the sync controller's decisions; the shim itself
// does not call it.
//
// The tokens kubelet sent are read from secrets[AttrTokens], as with
// serviceAccountTokenInSecrets.
func (d *Driver) VolumeIdentity(ctx context.Context, c *spc.Class, pod identity.Pod, secrets map[string]string) identity.Cloud {
	tokens, _ := identity.ParseCSITokens(secrets[AttrTokens])
	return d.identityOf(ctx, c, &publishRequest{pod: pod, tokens: tokens, mount: plugin.Mount{Secrets: secrets}}).Cloud
}

// nodePublishSecret reports whether the request carries the keys of a
// nodePublishSecretRef Secret (anything but the service-account tokens).
func nodePublishSecret(secrets map[string]string) bool {
	for k := range secrets {
		if k != AttrTokens {
			return true
		}
	}
	return false
}

// maxPublishSecretBytes bounds the nodePublishSecretRef keys a
// NodePublishVolume call may hand the built-in providers (a Secret holds
// at most 1 MiB).
const maxPublishSecretBytes = 1 << 20

// publishSecrets returns the keys of the request's nodePublishSecretRef
// Secret (the request's secrets but the service-account tokens), for
// volume.Volume.Secrets; nil when there are none. Kubelet read the Secret;
// the shim never reads Secrets itself, and never logs these values.
func publishSecrets(secrets map[string]string) func() (map[string]string, error) {
	if !nodePublishSecret(secrets) {
		return nil
	}
	out := make(map[string]string, len(secrets))
	var total int
	for k, v := range secrets {
		if k == AttrTokens {
			continue
		}
		out[k] = v
		total += len(k) + len(v)
	}
	return func() (map[string]string, error) {
		if total > maxPublishSecretBytes {
			return nil, fmt.Errorf("the nodePublishSecretRef Secret's keys hold %d bytes, more than %d", total, maxPublishSecretBytes)
		}
		return out, nil
	}
}

// annotations returns the annotations of a service account or pod and
// whether it could be read, reused for saTTL; uid, when set, keys the
// cache too (a pod recreated under its name is another pod). Without
// --service-account-annotations nothing is read.
func (d *Driver) annotations(ctx context.Context, obj client.Object, ns, name, uid string) (map[string]string, bool) {
	if !d.opts.ServiceAccountAnnotations || d.deps.APIReader == nil || name == "" {
		return nil, false
	}
	kind := "serviceaccount"
	if _, ok := obj.(*corev1.Pod); ok {
		kind = "pod"
	}
	key := kind + "/" + ns + "/" + name + "/" + uid
	now := d.deps.Clock.Now()
	d.mu.Lock()
	e, ok := d.sas[key]
	d.mu.Unlock()
	if ok && now.Sub(e.at) < saTTL {
		return e.annotations, e.known
	}
	known := true
	if err := d.deps.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		// Without the annotations, the identity is decided from the class
		// and the shim's defaults; not fatal.
		d.log.Debug(kind+" not readable", "object", ns+"/"+name, "err", err)
		known = false
	}
	ann := obj.GetAnnotations()
	if uid != "" && known && string(obj.GetUID()) != uid {
		// Another object under the name: not the one asked about.
		ann, known = nil, false
	}
	d.mu.Lock()
	if len(d.sas) >= 1024 {
		for k, e := range d.sas {
			if now.Sub(e.at) >= saTTL {
				delete(d.sas, k)
			}
		}
	}
	d.sas[key] = metaEntry{annotations: ann, known: known, at: now}
	d.mu.Unlock()
	return ann, known
}

// NodeLabel labels SecretProviderClassPodStatus objects with the node that
// mounted the volume, as upstream does.
const NodeLabel = "internal.secrets-store.csi.k8s.io/node-name"

// PodStatusName is the upstream name of a SecretProviderClassPodStatus.
func PodStatusName(pod, namespace, class string) string {
	return pod + "-" + namespace + "-" + class
}

// NewPodStatus builds the SecretProviderClassPodStatus of one mounted
// volume: owned by the pod, labelled with the node, objects sorted by id.
func NewPodStatus(pod identity.Pod, class, target, node string, versions map[string]string) *ssiv1.SecretProviderClassPodStatus {
	st := &ssiv1.SecretProviderClassPodStatus{}
	st.Namespace = pod.Namespace
	st.Name = PodStatusName(pod.Name, pod.Namespace, class)
	st.Labels = map[string]string{NodeLabel: node}
	st.OwnerReferences = podOwner(pod)
	st.Status = ssiv1.SecretProviderClassPodStatusStatus{
		PodName:                 pod.Name,
		SecretProviderClassName: class,
		Mounted:                 true,
		TargetPath:              target,
	}
	for id, v := range versions {
		st.Status.Objects = append(st.Status.Objects, ssiv1.SecretProviderClassObject{ID: id, Version: v})
	}
	sortObjects(st.Status.Objects)
	return st
}

func sortObjects(o []ssiv1.SecretProviderClassObject) {
	sort.Slice(o, func(i, j int) bool { return o[i].ID < o[j].ID })
}
