package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// Event reasons. Warnings name the class, Secret, object and cause; they
// never carry content.
const (
	ReasonInvalidClass          = "InvalidSecretProviderClass"
	ReasonInvalidSecretObject   = "InvalidSecretObject"
	ReasonProviderNotAvailable  = "ProviderNotAvailable"
	ReasonTokenRequestFailed    = "TokenRequestFailed"
	ReasonFetchFailed           = "FetchFailed"
	ReasonSecretConflict        = "SecretConflict"
	ReasonFailedToCreateSecret  = "FailedToCreateSecret"
	ReasonFailedToUpdateSecret  = "FailedToUpdateSecret"
	ReasonFailedToDeleteSecret  = "FailedToDeleteSecret"
	ReasonSyncServiceAccount    = "SyncServiceAccountNotAllowed"
	ReasonSecretCreated         = "SecretCreated"
	ReasonSecretUpdated         = "SecretUpdated"
	ReasonSecretDeleted         = "SecretDeleted"
	ReasonSecretAdopted         = "SecretAdopted"
	ReasonBackendNotAllowed     = "BackendNotAllowed"
	ReasonNamespaceNotAllowed   = "NamespaceNotAllowed"
	classAPIVersion             = "secrets-store.csi.x-k8s.io/v1"
	classKind                   = "SecretProviderClass"
	fetchRetryOnConflictBackoff = 200 * time.Millisecond
)

// Reconciler syncs one SecretProviderClass per request.
type Reconciler struct {
	client    client.Client // writes, TokenRequest
	live      client.Reader // the API server, to explain an AlreadyExists
	shared    client.Reader // manager cache: classes, service account metadata
	own       cache.Cache   // pods (trimmed) and managed Secrets
	providers provider.Set
	tokens    *tokenCache
	recorder  record.EventRecorder
	metrics   *Metrics
	clock     clock.Clock
	opts      Options
	log       logr.Logger
	wake      chan event.GenericEvent

	mu     gosync.Mutex
	states map[types.NamespacedName]*classState
	// recent holds when each Warning (by class, reason and message) was
	// last recorded, to record an unchanged problem only now and then.
	recent map[string]time.Time
}

// classState is what the controller remembers of a class between syncs.
// It holds the last fetched content in memory (never on disk), so that a
// version-aware provider can answer Unchanged and a pod event costs no
// fetch.
type classState struct {
	generation  int64
	identityKey string
	provider    string
	objects     []provider.Object
	files       map[string][]byte
	fetchedAt   time.Time
	failures    int
	nextAttempt time.Time
	force       bool
	managed     int
	// fetched is set by a fetch and cleared once the sync it belongs to
	// is counted.
	fetched bool
}

// consumer is who a class is synced for: a live pod, or (pod-less) a
// service account that allows it.
type consumer struct {
	pod            *corev1.Pod
	serviceAccount string
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.NamespacedName
	log := r.log.WithValues("class", key.String())
	ctx = logr.NewContext(ctx, log)

	class := &ssiv1.SecretProviderClass{}
	if err := r.shared.Get(ctx, key, class); apierrors.IsNotFound(err) {
		class = nil
	} else if err != nil {
		return reconcile.Result{}, fmt.Errorf("get SecretProviderClass %s: %w", key, err)
	}
	if class != nil && len(class.Spec.SecretObjects) > 0 && slices.Contains(r.opts.ProtectedNamespaces, key.Namespace) {
		// The operator's own namespaces (the release's, kube-system): the
		// admission policy refuses the controller's writes and tokens
		// there too.
		r.warn(class, ReasonNamespaceNotAllowed, "Sync", "SecretProviderClass %s: namespace %s is protected; the sync controller writes no Secrets and mints no tokens in it (the operator allows it with syncSecret.allowProtectedNamespaces)", key, key.Namespace)
		return reconcile.Result{}, nil
	}
	owned, err := r.ownedSecrets(ctx, key)
	if err != nil {
		return reconcile.Result{}, err
	}
	var consumers []consumer
	if class != nil && len(class.Spec.SecretObjects) > 0 {
		if consumers, err = r.consumers(ctx, class); err != nil {
			return reconcile.Result{}, err
		}
	}
	if len(consumers) == 0 {
		// No class, nothing to sync, or nobody left to sync for: the
		// Secrets this controller created for the class go.
		err := r.deleteSecrets(ctx, class, owned, nil)
		r.forget(key)
		return reconcile.Result{}, err
	}

	specs, problems := parseSecretObjects(class.Spec.SecretObjects)
	parsed, err := spc.Parse(class)
	if err != nil {
		r.warn(class, ReasonInvalidClass, "Parse", "%s; its Secrets are not synced", err)
		return reconcile.Result{}, nil
	}
	if err := r.opts.AllowedBackendHosts.CheckClass(parsed); err != nil {
		r.warn(class, ReasonBackendNotAllowed, "Fetch", "%s; its Secrets are not synced", err)
		return reconcile.Result{}, nil
	}
	if parsed.BuiltIn() {
		have, known := classFiles(parsed)
		specs, problems = filterSpecs(specs, problems, func(s secretSpec) []string { return checkObjects(s, parsed, have, known) })
	}
	declared := map[string]bool{}
	for _, o := range class.Spec.SecretObjects {
		if o != nil {
			declared[strings.TrimSpace(o.SecretName)] = true
		}
	}
	if err := r.deleteSecrets(ctx, class, owned, declared); err != nil {
		return reconcile.Result{}, err
	}
	if len(specs) == 0 {
		r.reportProblems(class, problems)
		return reconcile.Result{}, nil
	}

	st := r.state(key)
	files, wait, err := r.fetchIfDue(ctx, st, class, parsed, consumers)
	if err != nil {
		r.reportProblems(class, problems)
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	if files == nil {
		// A fetch failed before and is not due again yet.
		r.reportProblems(class, problems)
		return reconcile.Result{RequeueAfter: wait}, nil
	}

	// Objects of plugin providers are only known after a fetch.
	if !parsed.BuiltIn() {
		known := sortedKeys(files)
		have := func(p string) bool { _, ok := files[p]; return ok }
		specs, problems = filterSpecs(specs, problems, func(s secretSpec) []string { return checkObjects(s, parsed, have, known) })
	}
	owners := ownerReferences(class, consumers)
	changed, kept := false, 0
	var writeErr error
	for _, s := range specs {
		sec, msgs := buildSecret(class, s, files, owners)
		if len(msgs) > 0 {
			problems = append(problems, msgs...)
			continue
		}
		c, err := r.applySecret(ctx, class, sec, owned)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			writeErr = errors.Join(writeErr, err)
			continue
		}
		changed = changed || c
		kept++
	}
	r.reportProblems(class, problems)
	r.setManaged(key, kept)
	if st.fetched {
		result := ResultUnchanged
		if changed {
			result = ResultChanged
		}
		if writeErr != nil {
			result = ResultError
		}
		r.metrics.Syncs.WithLabelValues(parsed.Provider, result).Inc()
		st.fetched = false
	}
	if writeErr != nil {
		// Retried by the workqueue with its rate limiter; conflicts with
		// a concurrent writer resolve on the next pass.
		return reconcile.Result{}, writeErr
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// filterSpecs drops the specs check finds problems with, adding them.
func filterSpecs(specs []secretSpec, problems []string, check func(secretSpec) []string) ([]secretSpec, []string) {
	out := specs[:0]
	for _, s := range specs {
		if msgs := check(s); len(msgs) > 0 {
			problems = append(problems, msgs...)
			continue
		}
		out = append(out, s)
	}
	return out, problems
}

func (r *Reconciler) reportProblems(class *ssiv1.SecretProviderClass, problems []string) {
	for _, p := range problems {
		r.warn(class, ReasonInvalidSecretObject, "Validate", "%s; the Secret is not synced", p)
	}
}

// consumers returns the live pods of the class's namespace that consume
// it, oldest first, then the pod-less service account if the class names
// one that allows sync.
func (r *Reconciler) consumers(ctx context.Context, class *ssiv1.SecretProviderClass) ([]consumer, error) {
	var pods corev1.PodList
	if err := r.own.List(ctx, &pods, client.InNamespace(class.Namespace), client.MatchingFields{indexPodClasses: class.Name}); err != nil {
		return nil, fmt.Errorf("list pods consuming SecretProviderClass %s/%s: %w", class.Namespace, class.Name, err)
	}
	var out []consumer
	for i := range pods.Items {
		p := &pods.Items[i]
		if Live(p) {
			out = append(out, consumer{pod: p, serviceAccount: ServiceAccountName(p)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].pod, out[j].pod
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	if sa := strings.TrimSpace(class.Annotations[AnnotationSyncServiceAccount]); sa != "" {
		ok, why, err := r.allowsSync(ctx, class.Namespace, sa, class.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, consumer{serviceAccount: sa})
		} else {
			r.warn(class, ReasonSyncServiceAccount, "Sync", "annotation %s names service account %q, but %s; the class is synced only while pods consume it",
				AnnotationSyncServiceAccount, sa, why)
		}
	}
	return out, nil
}

// allowsSync reports whether a service account exists and its allow-sync
// annotation names the class; why says what is missing.
func (r *Reconciler) allowsSync(ctx context.Context, namespace, name, class string) (bool, string, error) {
	m := scheme.Metadata("ServiceAccount")
	if err := r.shared.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, m); apierrors.IsNotFound(err) {
		return false, fmt.Sprintf("it does not exist in namespace %s", namespace), nil
	} else if err != nil {
		return false, "", fmt.Errorf("get service account %s/%s: %w", namespace, name, err)
	}
	ok, why := AllowsSyncOf(m.Annotations, class)
	return ok, why, nil
}

// ownedSecrets are the managed Secrets this controller created for key.
func (r *Reconciler) ownedSecrets(ctx context.Context, key types.NamespacedName) (map[string]*corev1.Secret, error) {
	var list corev1.SecretList
	if err := r.own.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexSyncedFrom: key.Name}); err != nil {
		return nil, fmt.Errorf("list Secrets synced from SecretProviderClass %s: %w", key, err)
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Labels[LabelManaged] == "true" {
			out[s.Name] = s
		}
	}
	return out, nil
}

// deleteSecrets deletes the owned Secrets whose names are not in keep.
func (r *Reconciler) deleteSecrets(ctx context.Context, class *ssiv1.SecretProviderClass, owned map[string]*corev1.Secret, keep map[string]bool) error {
	var errs []error
	for _, name := range sortedKeys(owned) {
		if keep[name] {
			continue
		}
		s := owned[name]
		uid, rv := s.UID, s.ResourceVersion
		err := r.client.Delete(ctx, s, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			r.event(class, s, corev1.EventTypeNormal, ReasonSecretDeleted, "Delete", "deleted Secret %s: no consumer of the class remains or the class no longer declares it", name)
		case apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// Changed since the cache saw it; the change requeues.
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, name, err))
		default:
			r.metrics.Errors.WithLabelValues(ReasonFailedToDeleteSecret).Inc()
			r.event(class, s, corev1.EventTypeWarning, ReasonFailedToDeleteSecret, "Delete", "delete Secret %s: %s", name, apiCause(err))
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, name, err))
		}
	}
	return errors.Join(errs...)
}

// fetchIfDue fetches the class's objects when a fetch is due and returns
// the files to sync from (the last fetched when none is due). On failure
// it reports the cause and returns the delay until the next attempt; nil
// files and no error mean a failed fetch is waiting for its retry.
func (r *Reconciler) fetchIfDue(ctx context.Context, st *classState, class *ssiv1.SecretProviderClass, parsed *spc.Class, consumers []consumer) (map[string][]byte, time.Duration, error) {
	now := r.clock.Now()
	interval := r.opts.RotationInterval
	cands := r.candidates(ctx, parsed, consumers)

	r.mu.Lock()
	forced := st.force
	r.mu.Unlock()
	specChanged := st.generation != class.Generation || st.provider != parsed.Provider
	if specChanged {
		// Versions of another configuration must not make the provider
		// answer Unchanged for content it would now produce differently.
		st.objects, st.files, st.failures = nil, nil, 0
		r.mu.Lock()
		st.generation, st.provider = class.Generation, parsed.Provider
		r.mu.Unlock()
	}
	idChanged := st.files != nil
	for _, c := range cands {
		if c.key == st.identityKey {
			idChanged = false
		}
	}
	due := st.files == nil || forced || idChanged || !now.Before(st.fetchedAt.Add(interval))
	if !due {
		return st.files, r.jitter(st.fetchedAt.Add(interval).Sub(now)), nil
	}
	if st.failures > 0 && now.Before(st.nextAttempt) && !forced {
		return st.files, st.nextAttempt.Sub(now), nil
	}

	p, err := r.providers.Get(parsed.Provider)
	if err != nil {
		r.warn(class, ReasonProviderNotAvailable, "Fetch", "SecretProviderClass %s: provider %q is not available to the sync controller (built in: %s); its Secrets are not synced",
			parsed.Key(), parsed.Provider, strings.Join(r.providers.Names(), ", "))
		return nil, 0, err
	}
	r.mu.Lock()
	st.force = false
	r.mu.Unlock()

	var last error
	for _, c := range cands {
		merged, files, err := r.fetch(ctx, p, parsed, c, st)
		if err != nil {
			last = err
			if !retryOtherIdentity(err) {
				break
			}
			continue
		}
		st.objects, st.files = merged, fileMap(files)
		st.fetchedAt, st.identityKey = r.clock.Now(), c.key
		st.failures, st.nextAttempt = 0, time.Time{}
		st.fetched = true
		return st.files, r.jitter(interval), nil
	}

	// Every candidate failed: report, back off, keep what was synced.
	st.failures++
	limit := interval
	if pendingConsumer(consumers) && limit > maxPendingBackoff {
		// A pod may be waiting for the Secret to start.
		limit = maxPendingBackoff
	}
	backoff := r.opts.MinBackoff << min(st.failures-1, 16)
	if backoff > limit || backoff <= 0 {
		backoff = limit
	}
	st.nextAttempt = r.clock.Now().Add(backoff)
	reason := ReasonFetchFailed
	metricReason := ReasonFetchFailed + ":" + string(provider.ReasonOf(last))
	if errors.Is(last, errToken) {
		reason, metricReason = ReasonTokenRequestFailed, ReasonTokenRequestFailed
	}
	r.metrics.Errors.WithLabelValues(metricReason).Inc()
	r.metrics.Syncs.WithLabelValues(parsed.Provider, ResultError).Inc()
	r.log.Info("fetch failed", "attempt", st.failures, "retryIn", backoff.String(), "reason", reason)
	r.warn(class, reason, "Fetch", "%s; retried with backoff; Secrets keep their last synced content", last)
	return nil, backoff, last
}

// maxPendingBackoff bounds the retry delay of a failed fetch while a
// consuming pod is Pending.
const maxPendingBackoff = 30 * time.Second

func pendingConsumer(consumers []consumer) bool {
	for _, c := range consumers {
		if c.pod != nil && (c.pod.Status.Phase == corev1.PodPending || c.pod.Status.Phase == "") {
			return true
		}
	}
	return false
}

// retryOtherIdentity reports failures another consumer's identity may not
// have: the identity was refused or its token could not be minted.
func retryOtherIdentity(err error) bool {
	if errors.Is(err, errToken) {
		return true
	}
	switch provider.ReasonOf(err) {
	case provider.ReasonAccessDenied, provider.ReasonUnauthenticated:
		return true
	}
	return false
}

// candidate is one identity to fetch with.
type candidate struct {
	id  identity.Identity
	key string
}

// maxCandidates bounds the identities tried per fetch.
const maxCandidates = 3

// candidates are the identities a fetch may run as: one per distinct
// service account among the consumers, the oldest pod of each, at most
// maxCandidates. Tokens are only ever minted for these service accounts,
// bound to these pods.
func (r *Reconciler) candidates(ctx context.Context, class *spc.Class, consumers []consumer) []candidate {
	var out []candidate
	seen := map[string]bool{}
	for _, c := range consumers {
		if seen[c.serviceAccount] {
			continue
		}
		seen[c.serviceAccount] = true
		var annotations map[string]string
		m := scheme.Metadata("ServiceAccount")
		if err := r.shared.Get(ctx, types.NamespacedName{Namespace: class.Namespace, Name: c.serviceAccount}, m); err == nil {
			annotations = m.Annotations
		}
		pod := identity.Pod{Namespace: class.Namespace, ServiceAccount: c.serviceAccount}
		gcpProvider := ""
		var podName string
		var podUID types.UID
		if c.pod != nil {
			pod.Name, pod.UID, pod.NodeName = c.pod.Name, string(c.pod.UID), c.pod.Spec.NodeName
			podName, podUID = c.pod.Name, c.pod.UID
			gcpProvider = c.pod.Annotations[AnnotationGCPWorkloadIdentityProvider]
		}
		cloud := identity.CloudFor(class, annotations, gcpProvider)
		b, _ := json.Marshal(cloud)
		tokens := r.tokens.source(class.Namespace, c.serviceAccount, podName, podUID)
		if c.pod == nil {
			tokens = podlessTokens{inner: tokens, class: class.Key(), serviceAccount: c.serviceAccount, apiAudiences: r.opts.APIServerAudiences}
		}
		out = append(out, candidate{
			id:  identity.Identity{Pod: pod, Cloud: cloud, Tokens: tokens},
			key: class.Namespace + "/" + c.serviceAccount + "|" + string(b),
		})
		if len(out) == maxCandidates {
			break
		}
	}
	r.tokens.prune()
	return out
}

// fetch fetches and merges the class's objects as candidate c, within the
// fetch timeout.
func (r *Reconciler) fetch(ctx context.Context, p provider.Provider, class *spc.Class, c candidate, st *classState) ([]provider.Object, []atomicdir.File, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
	defer cancel()
	start := r.clock.Now()
	defer func() { r.metrics.FetchSeconds.WithLabelValues(class.Provider).Observe(r.clock.Since(start).Seconds()) }()
	return provider.FetchMerged(ctx, p, provider.Request{Class: class, Identity: c.id, Permission: atomicdir.DefaultMode, Sizes: r.opts.Sizes}, st.objects)
}

func fileMap(files []atomicdir.File) map[string][]byte {
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.Path] = f.Data
	}
	return m
}

// buildSecret returns the Secret a spec declares, from the fetched files.
func buildSecret(class *ssiv1.SecretProviderClass, s secretSpec, files map[string][]byte, owners []metav1.OwnerReference) (*corev1.Secret, []string) {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       class.Namespace,
			Name:            s.name,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			OwnerReferences: owners,
		},
		Type: s.typ,
		Data: map[string][]byte{},
	}
	for k, v := range s.labels {
		sec.Labels[k] = v
	}
	sec.Labels[LabelManaged] = "true"
	for k, v := range s.annotations {
		sec.Annotations[k] = v
	}
	sec.Annotations[AnnotationSyncedFrom] = class.Name
	var msgs []string
	for j, it := range s.items {
		content := files[it.objectName]
		if s.typ == corev1.SecretTypeTLS {
			v, err := tlsValue(it.key, content)
			if err != nil {
				msgs = append(msgs, fmt.Sprintf("secretObjects[%d] (Secret %q): data[%d]: %s from object %q: %v", s.index, s.name, j, it.key, it.objectName, err))
				continue
			}
			content = v
		}
		sec.Data[it.key] = content
	}
	return sec, msgs
}

// ownerReferences are the owners of the consuming pods (or the pods
// themselves when they have none), and the class for pod-less sync;
// apiVersion, kind, name and uid only, as upstream. Sorted, deduplicated.
func ownerReferences(class *ssiv1.SecretProviderClass, consumers []consumer) []metav1.OwnerReference {
	byUID := map[types.UID]metav1.OwnerReference{}
	for _, c := range consumers {
		switch {
		case c.pod == nil:
			byUID[class.UID] = metav1.OwnerReference{APIVersion: classAPIVersion, Kind: classKind, Name: class.Name, UID: class.UID}
		case len(c.pod.OwnerReferences) == 0:
			byUID[c.pod.UID] = metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: c.pod.Name, UID: c.pod.UID}
		default:
			for _, o := range c.pod.OwnerReferences {
				byUID[o.UID] = metav1.OwnerReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID}
			}
		}
	}
	out := make([]metav1.OwnerReference, 0, len(byUID))
	for _, o := range byUID {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].UID < out[j].UID
	})
	return out
}

// errConflict reports a Secret the controller must leave alone; the
// conflict is already reported.
var errConflict = errors.New("secret name taken")

// applySecret creates or updates one Secret; changed reports a write.
func (r *Reconciler) applySecret(ctx context.Context, class *ssiv1.SecretProviderClass, want *corev1.Secret, owned map[string]*corev1.Secret) (bool, error) {
	cur := owned[want.Name]
	if cur == nil {
		// Not ours (yet): a managed Secret of the upstream driver is
		// adopted; anything else is left alone.
		var other corev1.Secret
		err := r.own.Get(ctx, client.ObjectKeyFromObject(want), &other)
		switch {
		case apierrors.IsNotFound(err):
			return r.create(ctx, class, want)
		case err != nil:
			return false, fmt.Errorf("get Secret %s/%s from the cache: %w", want.Namespace, want.Name, err)
		}
		if from := other.Annotations[AnnotationSyncedFrom]; from != "" && from != class.Name {
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s is synced from SecretProviderClass %s; a Secret can be declared by one class only", want.Name, from))
			return false, errConflict
		}
		if other.Annotations[AnnotationSyncedFrom] == "" && strings.TrimSpace(other.Annotations[AnnotationAdopt]) != class.Name {
			// The managed label alone proves nothing: anyone who may
			// create Secrets in the namespace may set it, and any class
			// of the namespace could then take the Secret over.
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s is labelled %s=true but was not created by the sync controller; annotate it %s: %q to let this class adopt it",
				want.Name, LabelManaged, AnnotationAdopt, class.Name))
			return false, errConflict
		}
		cur = &other
		r.event(class, cur, corev1.EventTypeNormal, ReasonSecretAdopted, "Update", "adopting Secret %s, labelled %s=true and annotated %s: %q", want.Name, LabelManaged, AnnotationAdopt, class.Name)
	}
	if cur.Type != want.Type {
		// The type of a Secret is immutable: replace it.
		uid, rv := cur.UID, cur.ResourceVersion
		if err := r.client.Delete(ctx, cur, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil && !apierrors.IsNotFound(err) {
			r.metrics.Errors.WithLabelValues(ReasonFailedToUpdateSecret).Inc()
			r.event(class, cur, corev1.EventTypeWarning, ReasonFailedToUpdateSecret, "Update", "replace Secret %s (type %s to %s): %s", want.Name, cur.Type, want.Type, apiCause(err))
			return false, fmt.Errorf("replace Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		return r.create(ctx, class, want)
	}
	if equalSecret(cur, want) {
		return false, nil
	}
	upd := cur.DeepCopy()
	upd.Labels, upd.Annotations, upd.OwnerReferences, upd.Data, upd.StringData = want.Labels, want.Annotations, want.OwnerReferences, want.Data, nil
	if err := r.client.Update(ctx, upd); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.metrics.Errors.WithLabelValues(ReasonFailedToUpdateSecret).Inc()
		r.event(class, cur, corev1.EventTypeWarning, ReasonFailedToUpdateSecret, "Update", "update Secret %s: %s", want.Name, apiCause(err))
		return false, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.event(class, upd, corev1.EventTypeNormal, ReasonSecretUpdated, "Update", "updated Secret %s (%s)", want.Name, diffSummary(cur, want))
	return true, nil
}

func (r *Reconciler) create(ctx context.Context, class *ssiv1.SecretProviderClass, want *corev1.Secret) (bool, error) {
	err := r.client.Create(ctx, want)
	if apierrors.IsAlreadyExists(err) {
		// Not in the managed cache: either the cache lags behind a
		// Secret just written, or a Secret of someone else has the name.
		var live corev1.Secret
		if gerr := r.live.Get(ctx, client.ObjectKeyFromObject(want), &live); gerr == nil && live.Labels[LabelManaged] != "true" {
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s already exists and is not labelled %s=true; the sync controller does not overwrite it", want.Name, LabelManaged))
			return false, errConflict
		}
		return false, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	if err != nil {
		r.metrics.Errors.WithLabelValues(ReasonFailedToCreateSecret).Inc()
		r.event(class, want, corev1.EventTypeWarning, ReasonFailedToCreateSecret, "Create", "create Secret %s: %s", want.Name, apiCause(err))
		return false, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.event(class, want, corev1.EventTypeNormal, ReasonSecretCreated, "Create", "created Secret %s with keys %s", want.Name, strings.Join(sortedKeys(want.Data), ", "))
	return true, nil
}

func (r *Reconciler) conflict(class *ssiv1.SecretProviderClass, name, msg string) {
	r.metrics.Errors.WithLabelValues(ReasonSecretConflict).Inc()
	r.warn(class, ReasonSecretConflict, "Sync", "%s", msg)
}

// equalSecret compares what the controller owns of a Secret.
func equalSecret(cur, want *corev1.Secret) bool {
	if !maps.Equal(cur.Labels, want.Labels) || !maps.Equal(cur.Annotations, want.Annotations) {
		return false
	}
	if len(cur.Data) != len(want.Data) || len(cur.StringData) > 0 {
		return false
	}
	for k, v := range want.Data {
		if c, ok := cur.Data[k]; !ok || !bytes.Equal(c, v) {
			return false
		}
	}
	return equalOwners(cur.OwnerReferences, want.OwnerReferences)
}

func equalOwners(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(o metav1.OwnerReference) string {
		return o.APIVersion + "|" + o.Kind + "|" + o.Name + "|" + string(o.UID)
	}
	m := map[string]bool{}
	for _, o := range a {
		if o.Controller != nil || o.BlockOwnerDeletion != nil {
			return false
		}
		m[key(o)] = true
	}
	for _, o := range b {
		if !m[key(o)] {
			return false
		}
	}
	return true
}

// diffSummary names what changed, without values.
func diffSummary(cur, want *corev1.Secret) string {
	var parts []string
	var keys []string
	for k, v := range want.Data {
		if c, ok := cur.Data[k]; !ok || !bytes.Equal(c, v) {
			keys = append(keys, k)
		}
	}
	for k := range cur.Data {
		if _, ok := want.Data[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		parts = append(parts, "data keys "+strings.Join(keys, ", "))
	}
	if !maps.Equal(cur.Labels, want.Labels) {
		parts = append(parts, "labels")
	}
	if !maps.Equal(cur.Annotations, want.Annotations) {
		parts = append(parts, "annotations")
	}
	if !equalOwners(cur.OwnerReferences, want.OwnerReferences) {
		parts = append(parts, "owner references")
	}
	return strings.Join(parts, ", ")
}

// apiCause is the API server's message of a failed write. Secret
// validation messages of the API server do not quote data values.
func apiCause(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}

func (r *Reconciler) warn(class *ssiv1.SecretProviderClass, reason, action, format string, args ...any) {
	if reason != ReasonSecretConflict && reason != ReasonFetchFailed && reason != ReasonTokenRequestFailed {
		r.metrics.Errors.WithLabelValues(reason).Inc()
	}
	r.event(class, nil, corev1.EventTypeWarning, reason, action, format, args...)
}

// event records an event on the class (or, when the class is gone, on
// the Secret concerned). An identical Warning is recorded at most once per
// Options.WarningRepeat; a different message always is.
func (r *Reconciler) event(class *ssiv1.SecretProviderClass, related runtime.Object, typ, reason, action, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	var regarding runtime.Object = class
	if class == nil {
		if related == nil {
			return
		}
		regarding = related
	}
	if typ == corev1.EventTypeWarning {
		m, _ := meta.Accessor(regarding)
		key := m.GetNamespace() + "/" + m.GetName() + "|" + reason + "|" + msg
		now := r.clock.Now()
		r.mu.Lock()
		last, seen := r.recent[key]
		if !seen || now.Sub(last) >= r.opts.WarningRepeat {
			r.recent[key] = now
		}
		if len(r.recent) > 4096 {
			for k, t := range r.recent {
				if now.Sub(t) >= r.opts.WarningRepeat {
					delete(r.recent, k)
				}
			}
		}
		r.mu.Unlock()
		if seen && now.Sub(last) < r.opts.WarningRepeat {
			r.log.V(1).Info(msg, "reason", reason, "type", typ, "action", action, "repeated", true)
			return
		}
	}
	r.log.Info(msg, "reason", reason, "type", typ, "action", action)
	if len(msg) > 1000 {
		msg = msg[:997] + "..."
	}
	r.recorder.Event(regarding, typ, reason, msg)
}

func (r *Reconciler) state(key types.NamespacedName) *classState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.states[key]
	if st == nil {
		st = &classState{generation: -1}
		r.states[key] = st
	}
	return st
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.states, key)
	r.mu.Unlock()
	r.updateManagedGauge()
}

func (r *Reconciler) setManaged(key types.NamespacedName, n int) {
	r.mu.Lock()
	if st := r.states[key]; st != nil {
		st.managed = n
	}
	r.mu.Unlock()
	r.updateManagedGauge()
}

func (r *Reconciler) updateManagedGauge() {
	r.mu.Lock()
	total := 0
	for _, st := range r.states {
		total += st.managed
	}
	r.mu.Unlock()
	r.metrics.Managed.Set(float64(total))
}

// forceProvider marks every class of a provider for a fetch at once and
// returns their keys.
func (r *Reconciler) forceProvider(name string) []types.NamespacedName {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []types.NamespacedName
	for k, st := range r.states {
		if st.provider == name {
			st.force = true
			out = append(out, k)
		}
	}
	return out
}

// jitter spreads rotations of many classes: up to a tenth more than d.
func (r *Reconciler) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1)) //nolint:gosec // spreading load needs no unpredictability
}
