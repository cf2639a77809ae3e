// Package inject is the pod rewrite of Secrets Store Injector: one pure
// function, Rewrite, shared by the admission webhook and `ssi-webhook
// inject`. It turns every secrets-store CSI volume of a pod (or the
// annotation shorthand) into an in-memory emptyDir and adds the agent that
// fills it with the pod's own identity.
//
// Rewrite first parses the pod's annotations, volumes and the referenced
// SecretProviderClasses into validated domain types (settings, secretVolume,
// plan), then builds containers, volumes and the agent configuration from
// them. It does no I/O: callers look up the namespace labels, classes and
// service account (the webhook from informer caches, the CLI from its input)
// and pass them in.
package inject

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/render"
)

// CSIDriver is the driver name of secrets-store CSI volumes.
const CSIDriver = "secrets-store.csi.k8s.io"

// ClassAttribute is the volume attribute naming the SecretProviderClass.
const ClassAttribute = "secretProviderClass"

// Input is everything Rewrite reads. It is never modified.
type Input struct {
	// Namespace is the pod's namespace (the admission request's namespace;
	// a pod being created may not carry it in its metadata yet).
	Namespace string
	// NamespaceLabels are the labels of that namespace.
	NamespaceLabels map[string]string
	// Pod is the pod, or the pod template of a workload.
	Pod *corev1.PodTemplateSpec
	// Classes are SecretProviderClasses of Namespace by name; a referenced
	// name that is absent is a class that does not exist.
	Classes map[string]*ssiv1.SecretProviderClass
	// ServiceAccount is the metadata of the pod's service account, or nil
	// when it is unknown (identity settings are then derived from the
	// classes alone, with a warning where that is not enough).
	ServiceAccount *metav1.ObjectMeta
	// ConfigMap reads a key of a ConfigMap of Namespace, for the templates
	// of a class that take their text from one (render.Annotation); nil
	// when ConfigMaps cannot be read, and such a class is then denied.
	ConfigMap render.ConfigMapGetter
}

// Result is the outcome of Rewrite.
type Result struct {
	// Pod is the rewritten pod; nil when the pod is left unchanged.
	Pod *corev1.PodTemplateSpec
	// Skipped says why the pod was left unchanged; empty when injected.
	Skipped SkipReason
	// Warnings are allowed-but-dubious findings for admission warnings.
	Warnings []string
}

// SkipReason says why a pod is left unchanged. The values are metric labels.
type SkipReason string

// Reasons for leaving a pod unchanged.
const (
	SkipExcludedNamespace SkipReason = "excluded-namespace"
	SkipDisabledNamespace SkipReason = "disabled-namespace"
	SkipAlreadyInjected   SkipReason = "already-injected"
	SkipOptedOut          SkipReason = "opted-out"
	SkipNotEnabled        SkipReason = "not-enabled"
	SkipNothingToInject   SkipReason = "no-secrets-volume"
	SkipUnsupported       SkipReason = "unsupported-pod"
)

// Reason classifies an Error. The values are metric labels.
type Reason string

// Reasons for denying a pod.
const (
	ReasonClassNotFound     Reason = "class-not-found"
	ReasonClassInvalid      Reason = "class-invalid"
	ReasonInvalidAnnotation Reason = "invalid-annotation"
	ReasonInvalidVolume     Reason = "invalid-volume"
	ReasonConflict          Reason = "conflict"
	ReasonTooManyClasses    Reason = "too-many-classes"
)

// Error is a pod that must not be admitted as it is. Message names the
// class, volume, annotation or container and the problem.
type Error struct {
	Reason  Reason
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of an *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// MaxClassesPerPod is the most SecretProviderClasses one pod may name
// (docs/annotations.md). Each is a lookup at admission, and a miss is one
// read from the API server; the cap bounds what one pod costs the webhook.
const MaxClassesPerPod = 16

// References returns the names of the SecretProviderClasses a pod refers to
// (without duplicates, in the order Rewrite resolves them: the volumes in
// order, then the shorthand's) and its service account name ("default"
// when unset), so that callers know what to look up. A caller that stops
// at the first class that does not exist still gets Rewrite's denial for
// exactly that class.
func References(pod *corev1.PodTemplateSpec) (classes []string, serviceAccount string) {
	seen := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == CSIDriver {
			if n := strings.TrimSpace(v.CSI.VolumeAttributes[ClassAttribute]); n != "" && !seen[n] {
				seen[n] = true
				classes = append(classes, n)
			}
		}
	}
	if n := strings.TrimSpace(pod.Annotations[AnnotationSecretProviderClass]); n != "" && !seen[n] {
		classes = append(classes, n)
	}
	return classes, serviceAccountName(&pod.Spec)
}

// CheckReferences denies a pod that names more than MaxClassesPerPod
// classes; callers run it on References' answer before any lookup.
func CheckReferences(classes []string) error {
	if len(classes) > MaxClassesPerPod {
		return &Error{Reason: ReasonTooManyClasses, Message: fmt.Sprintf("the pod names %d SecretProviderClasses; at most %d are allowed per pod", len(classes), MaxClassesPerPod)}
	}
	return nil
}

func serviceAccountName(spec *corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	if spec.DeprecatedServiceAccount != "" {
		return spec.DeprecatedServiceAccount
	}
	return "default"
}

// Decide reports whether a pod is to be injected, looking only at the
// namespace and the opt-in and opt-out markers. The webhook calls it before
// any lookup; Rewrite calls it first too.
func Decide(cfg *Config, namespace string, namespaceLabels, annotations map[string]string) (SkipReason, []string, error) {
	if cfg.excluded(namespace) {
		return SkipExcludedNamespace, nil, nil
	}
	if annotations[AnnotationStatus] == StatusInjected {
		return SkipAlreadyInjected, nil, nil
	}
	want, set, err := wantsInjection(annotations)
	if err != nil {
		return "", nil, err
	}
	if set && !want {
		return SkipOptedOut, nil, nil
	}
	v, labelled := namespaceLabels[LabelInjection]
	if v == LabelValueDisabled {
		// The webhook configuration never sends such namespaces; decide
		// the same offline.
		return SkipDisabledNamespace, nil, nil
	}
	if set && want {
		return "", nil, nil
	}
	switch {
	case v == LabelValueEnabled:
		return "", nil, nil
	case labelled:
		return SkipNotEnabled, []string{fmt.Sprintf("namespace %s has label %s=%q; only %q enables injection", namespace, LabelInjection, v, LabelValueEnabled)}, nil
	}
	return SkipNotEnabled, nil, nil
}

// Rewrite returns the rewritten pod, or why it is left alone, or an *Error
// when it must be denied. It is deterministic and idempotent: a rewritten
// pod carries the status annotation and is left alone the second time.
func Rewrite(cfg *Config, in Input) (*Result, error) {
	ann := in.Pod.Annotations
	skip, warnings, err := Decide(cfg, in.Namespace, in.NamespaceLabels, ann)
	if err != nil {
		return nil, err
	}
	if skip != "" {
		return &Result{Skipped: skip, Warnings: warnings}, nil
	}
	if os := in.Pod.Spec.OS; os != nil && os.Name != corev1.Linux {
		return &Result{Skipped: SkipUnsupported, Warnings: []string{fmt.Sprintf("pod is for %s nodes; the agent runs on Linux only, so its secrets-store volumes are left to the node CSI driver", os.Name)}}, nil
	}
	s, w, err := parseSettings(ann)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	if classes, _ := References(in.Pod); len(classes) > 0 {
		if err := CheckReferences(classes); err != nil {
			return nil, err
		}
	}
	vols, w, err := secretVolumes(&in, s)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	if len(vols) == 0 {
		if s.explicitInject {
			warnings = append(warnings, fmt.Sprintf("annotation %s is \"true\" but the pod has no secrets-store volume served by a built-in provider", AnnotationInject))
		}
		return &Result{Skipped: SkipNothingToInject, Warnings: dedupe(warnings)}, nil
	}
	p, w, err := newPlan(cfg, &in, s, vols)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	out := in.Pod.DeepCopy()
	if err := p.apply(out); err != nil {
		return nil, err
	}
	return &Result{Pod: out, Warnings: dedupe(warnings)}, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
