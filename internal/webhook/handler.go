package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
)

// DefaultPath is the URL path of the pod mutation endpoint.
const DefaultPath = "/mutate-v1-pod"

// Admission outcomes (metric label values).
const (
	OutcomeInjected = "injected"
	OutcomeSkipped  = "skipped"
	OutcomeDenied   = "denied"
	OutcomeError    = "error"
)

// maxWarning is the length past which the API server may truncate a warning.
const maxWarning = 256

// Lookup reads what a rewrite needs from the cluster. The webhook's
// implementation reads informer caches; a miss is confirmed with one live
// read so that a class created just before its pod is not denied.
type Lookup interface {
	// NamespaceLabels returns the labels of a namespace.
	NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error)
	// Class returns a SecretProviderClass, or nil when it does not exist.
	Class(ctx context.Context, namespace, name string) (*ssiv1.SecretProviderClass, error)
	// ServiceAccount returns a service account's metadata, or nil when it
	// does not exist.
	ServiceAccount(ctx context.Context, namespace, name string) (*metav1.ObjectMeta, error)
	// ConfigMap returns a ConfigMap, or nil when it does not exist (the
	// text of a class's templates, render.Annotation).
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
}

// Metrics are the webhook's Prometheus collectors.
type Metrics struct {
	// Admissions counts admissions by outcome and reason.
	Admissions *prometheus.CounterVec
	// Duration is the handling time of an admission, decoding and patch
	// computation included.
	Duration *prometheus.HistogramVec
}

var (
	defaultMetricsOnce sync.Once
	defaultMetrics     *Metrics
)

// NewMetrics makes the collectors and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssi_webhook_admissions_total",
			Help: "Pod admissions by outcome (injected, skipped, denied, error) and reason.",
		}, []string{"outcome", "reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssi_webhook_admission_duration_seconds",
			Help:    "Time to handle a pod admission, by outcome.",
			Buckets: []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Admissions, m.Duration)
	}
	return m
}

// DefaultMetrics are the collectors registered with controller-runtime's
// registry, which the manager's metrics endpoint serves.
func DefaultMetrics() *Metrics {
	defaultMetricsOnce.Do(func() { defaultMetrics = NewMetrics(ctrlmetrics.Registry) })
	return defaultMetrics
}

// Injector is the pod defaulter: it looks up what inject.Rewrite needs and
// applies its result to the pod. controller-runtime computes the JSON patch
// from the changed object.
type Injector struct {
	Config        *inject.Config
	Lookup        Lookup
	FailurePolicy admissionregistrationv1.FailurePolicyType
	Log           logr.Logger
}

// recordKey carries the per-admission record from the instrumented handler
// to Default, which has no other way to return warnings or its outcome.
type recordKey struct{}

type record struct {
	outcome  string
	reason   string
	warnings []string
}

// Default implements admission.Defaulter.
func (i *Injector) Default(ctx context.Context, obj runtime.Object) error {
	rec, _ := ctx.Value(recordKey{}).(*record)
	if rec == nil {
		rec = &record{}
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		rec.outcome, rec.reason = OutcomeError, "not-a-pod"
		return fmt.Errorf("expected a Pod, got %T", obj)
	}
	ns := pod.Namespace
	if req, err := admission.RequestFromContext(ctx); err == nil && req.Namespace != "" {
		ns = req.Namespace
	}
	res, err := i.rewrite(ctx, ns, pod)
	if err != nil {
		if reason := inject.ReasonOf(err); reason != "" {
			rec.outcome, rec.reason = OutcomeDenied, string(reason)
			i.Log.Info("denied pod", "namespace", ns, "pod", podName(pod), "reason", reason, "message", err.Error())
			return err
		}
		rec.outcome, rec.reason = OutcomeError, "lookup"
		i.Log.Error(err, "cannot decide on pod", "namespace", ns, "pod", podName(pod), "failurePolicy", i.FailurePolicy)
		if i.FailurePolicy == admissionregistrationv1.Fail {
			return apierrors.NewInternalError(err)
		}
		rec.warnings = append(rec.warnings, "secrets-store-injector could not decide on this pod and admitted it unchanged (failurePolicy Ignore): "+err.Error())
		return nil
	}
	rec.warnings = append(rec.warnings, res.Warnings...)
	if res.Pod == nil {
		rec.outcome, rec.reason = OutcomeSkipped, string(res.Skipped)
		return nil
	}
	rec.outcome = OutcomeInjected
	pod.ObjectMeta = res.Pod.ObjectMeta
	pod.Spec = res.Pod.Spec
	i.Log.V(1).Info("injected pod", "namespace", ns, "pod", podName(pod))
	return nil
}

// rewrite gathers the inputs and calls inject.Rewrite. Lookups happen only
// for pods the cheap decision does not already skip.
func (i *Injector) rewrite(ctx context.Context, ns string, pod *corev1.Pod) (*inject.Result, error) {
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
	// Only the opt-out, status and namespace exclusion are decidable
	// without the namespace's labels.
	if skip, _, err := inject.Decide(i.Config, ns, map[string]string{inject.LabelInjection: inject.LabelValueEnabled}, pod.Annotations); err != nil || skip != "" {
		if err != nil {
			return nil, err
		}
		return &inject.Result{Skipped: skip}, nil
	}
	labels, err := i.Lookup.NamespaceLabels(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("read namespace %s: %w", ns, err)
	}
	in := inject.Input{Namespace: ns, NamespaceLabels: labels, Pod: tmpl, Classes: map[string]*ssiv1.SecretProviderClass{}}
	if skip, w, err := inject.Decide(i.Config, ns, labels, pod.Annotations); err != nil || skip != "" {
		if err != nil {
			return nil, err
		}
		return &inject.Result{Skipped: skip, Warnings: w}, nil
	}
	classes, sa := inject.References(tmpl)
	if err := inject.CheckReferences(classes); err != nil {
		return nil, err
	}
	for _, name := range classes {
		c, err := i.Lookup.Class(ctx, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read SecretProviderClass %s/%s: %w", ns, name, err)
		}
		if c == nil {
			// Rewrite denies the pod at this class, the first missing
			// one in its order; reading the others (each miss is a
			// read from the API server) would only cost.
			break
		}
		in.Classes[name] = c
	}
	in.ConfigMap = func(name, key string) (string, bool, error) {
		cm, err := i.Lookup.ConfigMap(ctx, ns, name)
		if err != nil || cm == nil {
			return "", false, err
		}
		v, ok := cm.Data[key]
		return v, ok, nil
	}
	if in.ServiceAccount, err = i.Lookup.ServiceAccount(ctx, ns, sa); err != nil {
		return nil, fmt.Errorf("read ServiceAccount %s/%s: %w", ns, sa, err)
	}
	return inject.Rewrite(i.Config, in)
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}

// instrumented wraps the defaulting handler: it hands Default a record,
// adds the record's warnings to the response, and observes the metrics.
type instrumented struct {
	inner   admission.Handler
	metrics *Metrics
}

// Handle implements admission.Handler.
func (h *instrumented) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	rec := &record{}
	resp := h.inner.Handle(context.WithValue(ctx, recordKey{}, rec), req)
	for _, w := range rec.warnings {
		if len(w) > maxWarning {
			w = w[:maxWarning-3] + "..."
		}
		resp.Warnings = append(resp.Warnings, w)
	}
	if rec.outcome == "" {
		// Decoding failed, or a DELETE: Default was not reached.
		rec.outcome, rec.reason = OutcomeError, "decode"
		if req.Operation == admissionv1.Delete || resp.Allowed {
			rec.outcome, rec.reason = OutcomeSkipped, "not-handled"
		}
	}
	if rec.outcome == OutcomeDenied && resp.Result != nil {
		// The status code of a denial is 403 (Forbidden); keep the
		// message, which names the class and the problem.
		resp.Result.Code = http.StatusForbidden
	}
	h.metrics.Admissions.WithLabelValues(rec.outcome, rec.reason).Inc()
	h.metrics.Duration.WithLabelValues(rec.outcome).Observe(time.Since(start).Seconds())
	return resp
}

// NewHandler returns the admission webhook for pods: the Injector behind
// controller-runtime's defaulting webhook, instrumented.
func NewHandler(scheme *runtime.Scheme, inj *Injector, m *Metrics) *admission.Webhook {
	wh := admission.WithCustomDefaulter(scheme, &corev1.Pod{}, inj)
	wh.Handler = &instrumented{inner: wh.Handler, metrics: m}
	wh.RecoverPanic = ptr(true)
	return wh
}

func ptr[T any](v T) *T { return &v }

// errNotReady is the readiness failure before the caches are synced.
var errNotReady = errors.New("informer caches are not synced yet")
