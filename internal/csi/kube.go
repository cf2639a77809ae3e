package csi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/spc"
)

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
func (d *Driver) getClass(ctx context.Context, pr *publishRequest) (*spc.Class, error) {
	key := client.ObjectKey{Namespace: pr.pod.Namespace, Name: pr.className}
	obj := &ssiv1.SecretProviderClass{}
	err := d.deps.Classes.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) && d.deps.APIReader != nil {
		// The cache may not have seen a class created just before the pod.
		err = d.deps.APIReader.Get(ctx, key, obj)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, &classError{ReasonClassNotFound, codes.FailedPrecondition,
			fmt.Errorf("SecretProviderClass %q not found in namespace %q (classes are read from the pod's namespace only)", pr.className, pr.pod.Namespace)}
	case err != nil:
		return nil, &classError{ReasonMountFailed, codes.Unavailable,
			fmt.Errorf("read SecretProviderClass %s/%s: %w", pr.pod.Namespace, pr.className, err)}
	}
	c, err := d.parseClass(obj)
	if err != nil {
		return nil, &classError{ReasonClassInvalid, codes.FailedPrecondition, err}
	}
	if err := d.opts.AllowedBackendHosts.CheckClass(c); err != nil {
		return nil, &classError{ReasonBackendNotAllowed, codes.FailedPrecondition,
			fmt.Errorf("%w; the node shim's list is the Helm value linux.allowedBackendHosts", err)}
	}
	return c, nil
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
func (d *Driver) loadClass(ctx context.Context, pr *publishRequest) (*spc.Class, error) {
	c, err := d.getClass(ctx, pr)
	if err == nil {
		return c, nil
	}
	var ce *classError
	errors.As(err, &ce)
	d.eventf(pr.pod, corev1.EventTypeWarning, ce.reason, "%v", err)
	d.metrics.publish.WithLabelValues("", ce.reason).Inc()
	d.log.Warn("publish failed", "pod", pr.pod.Namespace+"/"+pr.pod.Name, "reason", ce.reason, "err", err)
	return nil, status.Error(ce.code, err.Error())
}

type saEntry struct {
	annotations map[string]string
	at          time.Time
}

// saTTL is how long service-account annotations are reused.
const saTTL = time.Minute

// cloud derives the cloud identity settings the agent gets from the
// webhook: service-account annotations, with the class's Azure client and
// tenant ids taking precedence.
func (d *Driver) cloud(ctx context.Context, c *spc.Class, pod identity.Pod) identity.Cloud {
	ann := d.saAnnotations(ctx, pod.Namespace, pod.ServiceAccount)
	cl := identity.Cloud{
		AWSRoleARN:                  ann[identity.SAAnnotationAWSRoleARN],
		GCPServiceAccount:           ann[identity.SAAnnotationGCPServiceAcct],
		GCPWorkloadIdentityProvider: d.opts.GCPWorkloadIdentityProvider,
		AzureClientID:               ann[identity.SAAnnotationAzureClientID],
		AzureTenantID:               ann[identity.SAAnnotationAzureTenantID],
	}
	if c.Azure != nil {
		if c.Azure.ClientID != "" {
			cl.AzureClientID = c.Azure.ClientID
		}
		if c.Azure.TenantID != "" {
			cl.AzureTenantID = c.Azure.TenantID
		}
	}
	return cl
}

func (d *Driver) saAnnotations(ctx context.Context, ns, name string) map[string]string {
	if !d.opts.ServiceAccountAnnotations || d.deps.APIReader == nil || name == "" {
		return nil
	}
	key := ns + "/" + name
	now := d.deps.Clock.Now()
	d.mu.Lock()
	e, ok := d.sas[key]
	d.mu.Unlock()
	if ok && now.Sub(e.at) < saTTL {
		return e.annotations
	}
	sa := &corev1.ServiceAccount{}
	if err := d.deps.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sa); err != nil {
		// Without the annotations, providers fall back to what the class
		// and the tokens carry; not fatal.
		d.log.Debug("service account not readable", "serviceAccount", key, "err", err)
	}
	d.mu.Lock()
	if len(d.sas) >= 1024 {
		for k, e := range d.sas {
			if now.Sub(e.at) >= saTTL {
				delete(d.sas, k)
			}
		}
	}
	d.sas[key] = saEntry{annotations: sa.Annotations, at: now}
	d.mu.Unlock()
	return sa.Annotations
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
