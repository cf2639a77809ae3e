// Package sync is the secret sync controller: it turns the secretObjects of
// SecretProviderClasses into Kubernetes Secrets, for workloads that read
// secrets from environment variables.
//
// A class is synced while at least one live pod in its namespace consumes
// it (a pod the webhook rewrote, or a pod with a secrets-store csi volume
// that the node shim serves), or, beyond upstream, while it names a service
// account that allows pod-less sync. The controller mints a short-lived
// token for a consuming pod's service account (bound to that pod), fetches
// with the same provider code as the agent and the node shim, in memory,
// and writes each declared Secret with the upstream driver's semantics. It
// re-fetches every rotation interval and writes only on change, and deletes
// the Secrets it created once no consumer remains.
//
// The controller runs as a process of its own (`ssi-webhook sync`, Run),
// under a service account of its own, so that the admission webhook holds
// no Secret or token rights; it syncs only on the elected leader, and its
// informers (pods, reduced to what it reads, and the Secrets labelled
// secrets-store.csi.k8s.io/managed=true) start only there. What it writes
// is narrowed by rules checked twice, in code and by the admission
// policies of RBAC: only the Secret types of spc.SyncableSecretTypes,
// never in protected namespaces, pod-less tokens only with a consent that
// names the class and never for the API server's audience, and (when the
// operator sets AllowedBackendHosts) only backend hosts on that list.
package secretsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/scheme"
)

// Annotations of pod-less sync.
const (
	// AnnotationSyncServiceAccount on a SecretProviderClass names a
	// service account (same namespace) to sync the class with when no pod
	// consumes it.
	AnnotationSyncServiceAccount = inject.Prefix + "sync-service-account"
	// AnnotationAllowSync on that service account lists, comma-separated,
	// the classes of its namespace that may be synced pod-less with it:
	// the account's owner agrees, class by class. The value "true" of
	// earlier versions names no class and consents to nothing.
	AnnotationAllowSync = inject.Prefix + "allow-sync"
)

// legacyAllowSync is the value of AnnotationAllowSync that once consented
// to every class of the namespace.
const legacyAllowSync = "true"

// AllowSyncClasses parses the value of AnnotationAllowSync: the class
// names it lists, trimmed, without empty entries. legacy reports the old
// value "true", which lists no class.
func AllowSyncClasses(value string) (classes []string, legacy bool) {
	if strings.TrimSpace(value) == legacyAllowSync {
		return nil, true
	}
	for _, c := range strings.Split(value, ",") {
		if c = strings.TrimSpace(c); c != "" {
			classes = append(classes, c)
		}
	}
	return classes, false
}

// AllowsSyncOf reports whether a service account's annotations consent to
// pod-less sync of the class; why says, for an event, what is missing and
// how to consent.
func AllowsSyncOf(annotations map[string]string, class string) (bool, string) {
	v, ok := annotations[AnnotationAllowSync]
	if !ok {
		return false, fmt.Sprintf("it is not annotated %s: %q", AnnotationAllowSync, class)
	}
	classes, legacy := AllowSyncClasses(v)
	if legacy {
		return false, fmt.Sprintf("its annotation %s: \"true\" names no class (it no longer consents to every class of the namespace); list the classes it may be synced for, e.g. %s: %q",
			AnnotationAllowSync, AnnotationAllowSync, class)
	}
	if slices.Contains(classes, class) {
		return true, ""
	}
	return false, fmt.Sprintf("its annotation %s does not name the class (it names %q); add %q to the list", AnnotationAllowSync, strings.Join(classes, ","), class)
}

// ControllerName names the controller (logs, events, metrics).
const ControllerName = "secret-sync"

// Defaults of Options.
const (
	DefaultRotationInterval = 2 * time.Minute
	// DefaultTokenExpiration is the shortest lifetime TokenRequest allows.
	DefaultTokenExpiration = 10 * time.Minute
	DefaultFetchTimeout    = 30 * time.Second
	DefaultMinBackoff      = 2 * time.Second
)

// Options configure the controller.
type Options struct {
	// Providers are the providers the controller fetches with; classes of
	// other providers get a ProviderNotAvailable event.
	Providers provider.Set
	// RotationInterval is the time between fetches of a class
	// (rotationPollInterval); zero means DefaultRotationInterval.
	RotationInterval time.Duration
	// TokenExpiration is the lifetime of minted tokens; zero means
	// DefaultTokenExpiration.
	TokenExpiration time.Duration
	// FetchTimeout bounds one fetch; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MinBackoff is the first delay after a failed fetch; it doubles per
	// failure up to RotationInterval. Zero means DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxConcurrentReconciles is the number of classes synced at once;
	// zero means 4.
	MaxConcurrentReconciles int
	// Clock decides when fetches are due; nil means the real clock.
	Clock clock.WithTicker
	// Minter mints service-account tokens; nil means the TokenRequest API
	// through the manager's client.
	Minter TokenMinter
	// Recorder records events; nil means core/v1 events through a
	// broadcaster of the controller's own (see newRecorder).
	Recorder record.EventRecorder
	// WarningRepeat is how long an identical Warning on a class is not
	// recorded again; zero means 10 minutes.
	WarningRepeat time.Duration
	// AllowedBackendHosts limits the backend addresses a class may name
	// (--allowed-backend-hosts); nil allows every host. A class naming
	// another gets a BackendNotAllowed event and is not fetched.
	AllowedBackendHosts *provider.BackendHosts
	// ProtectedNamespaces are namespaces whose classes are never synced
	// (the release namespace and kube-system unless the operator allows
	// them); their classes get a NamespaceNotAllowed event. The admission
	// policy (RBACOptions.ProtectedNamespaces) refuses the same.
	ProtectedNamespaces []string
	// APIServerAudiences are the API server's own audiences, for which no
	// pod-less token is minted (besides the default audience); nil means
	// KubernetesAudiences.
	APIServerAudiences []string
	// TokenRequests are the audiences of the node shim's CSIDriver
	// tokenRequests (Helm value tokenRequests): they decide the audience
	// of a Vault class that sets none, as the webhook and the shim decide
	// it (identity.Defaults, identity.VaultAudience).
	TokenRequests []string
	// Metrics; nil means DefaultMetrics.
	Metrics *Metrics
	// Logger; zero means the manager's logger.
	Logger logr.Logger
	// Sizes caps each object and each class's objects together (what a
	// synced Secret may hold); the zero value means the defaults.
	Sizes limits.Sizes
}

func (o *Options) defaults(mgr manager.Manager) {
	if o.RotationInterval <= 0 {
		o.RotationInterval = DefaultRotationInterval
	}
	if o.TokenExpiration <= 0 {
		o.TokenExpiration = DefaultTokenExpiration
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.Clock == nil {
		o.Clock = schedule.Clock(o.Clock)
	}
	if o.Minter == nil {
		o.Minter = ClientMinter{Client: mgr.GetClient()}
	}
	if o.WarningRepeat <= 0 {
		o.WarningRepeat = 10 * time.Minute
	}
	if o.Metrics == nil {
		o.Metrics = DefaultMetrics()
	}
	if o.Logger.GetSink() == nil {
		o.Logger = mgr.GetLogger()
	}
	o.Logger = o.Logger.WithName(ControllerName)
}

// Index names of the controller's private cache.
const (
	indexPodClasses = "ssi.sync/classes"
	indexSyncedFrom = "ssi.sync/synced-from"
)

// Setup adds the controller to mgr. SecretProviderClasses and service
// account metadata are read through the manager's cache; pods and managed
// Secrets through a cache of the controller's
// own that runs only while this replica leads. The manager must have
// leader election enabled when more than one replica runs.
func Setup(mgr manager.Manager, opts Options) (*Reconciler, error) {
	if len(opts.Providers) == 0 {
		return nil, errors.New("sync controller: no providers")
	}
	opts.defaults(mgr)
	if opts.Recorder == nil {
		rec, err := newRecorder(mgr)
		if err != nil {
			return nil, err
		}
		opts.Recorder = rec
	}

	managed := labels.SelectorFromSet(labels.Set{LabelManaged: "true"})
	own, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:                      mgr.GetScheme(),
		Mapper:                      mgr.GetRESTMapper(),
		ReaderFailOnMissingInformer: true,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:    {Transform: trimTransform},
			&corev1.Secret{}: {Label: managed, Transform: cache.TransformStripManagedFields()},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sync controller cache: %w", err)
	}
	ctx := context.Background()
	if err := own.IndexField(ctx, &corev1.Pod{}, indexPodClasses, func(o client.Object) []string {
		return PodClasses(o.(*corev1.Pod))
	}); err != nil {
		return nil, fmt.Errorf("index pods by class: %w", err)
	}
	if err := own.IndexField(ctx, &corev1.Secret{}, indexSyncedFrom, func(o client.Object) []string {
		if n := o.GetAnnotations()[AnnotationSyncedFrom]; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("index secrets by class: %w", err)
	}
	if err := mgr.Add(leaderCache{own}); err != nil {
		return nil, err
	}

	r := &Reconciler{
		client:    mgr.GetClient(),
		live:      mgr.GetAPIReader(),
		shared:    mgr.GetCache(),
		own:       own,
		providers: opts.Providers,
		tokens:    &tokenCache{minter: opts.Minter, expiration: opts.TokenExpiration, clock: opts.Clock},
		recorder:  opts.Recorder,
		metrics:   opts.Metrics,
		clock:     opts.Clock,
		opts:      opts,
		log:       opts.Logger,
		states:    map[types.NamespacedName]*classState{},
		recent:    map[string]time.Time{},
		wake:      make(chan event.GenericEvent, 1024),
	}

	classEvents := predicate.Or[*ssiv1.SecretProviderClass](predicate.TypedGenerationChangedPredicate[*ssiv1.SecretProviderClass]{},
		predicate.TypedAnnotationChangedPredicate[*ssiv1.SecretProviderClass]{})
	err = builder.ControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		WatchesRawSource(source.Kind(mgr.GetCache(), &ssiv1.SecretProviderClass{},
			&handler.TypedEnqueueRequestForObject[*ssiv1.SecretProviderClass]{}, classEvents)).
		WatchesRawSource(source.Kind(own, &corev1.Pod{},
			handler.TypedEnqueueRequestsFromMapFunc(podRequests), podChanged())).
		WatchesRawSource(source.Kind(own, &corev1.Secret{},
			handler.TypedEnqueueRequestsFromMapFunc(secretRequests))).
		WatchesRawSource(source.Kind(mgr.GetCache(), scheme.Metadata("ServiceAccount"),
			handler.TypedEnqueueRequestsFromMapFunc(r.serviceAccountRequests),
			predicate.TypedAnnotationChangedPredicate[*metav1.PartialObjectMetadata]{})).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		Complete(r)
	if err != nil {
		return nil, fmt.Errorf("sync controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(r.watchWakers)); err != nil {
		return nil, err
	}
	return r, nil
}

// newRecorder records core/v1 events. Unlike events.k8s.io/v1, whose
// series merge events that differ only in their note (so a second, different
// problem of a class would stay invisible behind the first for minutes),
// core/v1 events keep each distinct message. The broadcaster stops with
// the manager.
func newRecorder(mgr manager.Manager) (record.EventRecorder, error) {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("sync controller events client: %w", err)
	}
	b := record.NewBroadcaster()
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		w := b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
		<-ctx.Done()
		w.Stop()
		b.Shutdown()
		return nil
	})); err != nil {
		return nil, err
	}
	return b.NewRecorder(mgr.GetScheme(), corev1.EventSource{Component: "ssi-" + ControllerName}), nil
}

// leaderCache runs the controller's own informers only on the leader.
type leaderCache struct{ cache.Cache }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (leaderCache) NeedLeaderElection() bool { return true }

// podRequests enqueues the classes a pod consumes, in its namespace.
func podRequests(_ context.Context, pod *corev1.Pod) []reconcile.Request {
	var out []reconcile.Request
	for _, n := range PodClasses(pod) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: n}})
	}
	return out
}

// podChanged passes creations, deletions, and the updates that change what
// the controller reads from a pod; status heartbeats do not enqueue.
func podChanged() predicate.TypedPredicate[*corev1.Pod] {
	return predicate.TypedFuncs[*corev1.Pod]{
		UpdateFunc: func(e event.TypedUpdateEvent[*corev1.Pod]) bool {
			o, n := e.ObjectOld, e.ObjectNew
			if Live(o) != Live(n) || ServiceAccountName(o) != ServiceAccountName(n) {
				return true
			}
			if !slices.Equal(PodClasses(o), PodClasses(n)) {
				return true
			}
			// Not fmt.Sprint: it prints the *bool fields (controller,
			// blockOwnerDeletion) as addresses, which differ between any
			// two decoded copies.
			return !apiequality.Semantic.DeepEqual(o.OwnerReferences, n.OwnerReferences)
		},
	}
}

// secretRequests enqueues the class a managed Secret was synced from, or,
// for a Secret not synced yet, the class its adopt annotation names (so
// that annotating it adopts it at once).
func secretRequests(_ context.Context, s *corev1.Secret) []reconcile.Request {
	n := s.Annotations[AnnotationSyncedFrom]
	if n == "" {
		n = strings.TrimSpace(s.Annotations[AnnotationAdopt])
	}
	if n == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: n}}}
}

// serviceAccountRequests enqueues, when a service account's annotations
// change, the classes whose identity may depend on them: those naming it
// for pod-less sync and those consumed by its pods. Both are found among
// the classes of its namespace that have secretObjects.
func (r *Reconciler) serviceAccountRequests(ctx context.Context, sa *metav1.PartialObjectMetadata) []reconcile.Request {
	var list ssiv1.SecretProviderClassList
	if err := r.shared.List(ctx, &list, client.InNamespace(sa.Namespace)); err != nil {
		r.log.Error(err, "list classes for a service account change", "namespace", sa.Namespace)
		return nil
	}
	var out []reconcile.Request
	for _, c := range list.Items {
		if len(c.Spec.SecretObjects) > 0 {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
		}
	}
	return out
}

// watchWakers forwards providers' early-refetch signals: every class of
// the provider that woke is fetched again at once.
func (r *Reconciler) watchWakers(ctx context.Context) error {
	type waker struct {
		name string
		ch   <-chan struct{}
	}
	var ws []waker
	for name, p := range r.providers {
		if w, ok := p.(provider.Waker); ok {
			ws = append(ws, waker{name, w.Wake()})
		}
	}
	for _, w := range ws {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-w.ch:
					for _, key := range r.forceProvider(w.name) {
						obj := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
						select {
						case r.wake <- event.GenericEvent{Object: obj}:
						case <-ctx.Done():
							return
						}
					}
				}
			}
		}()
	}
	<-ctx.Done()
	return nil
}
