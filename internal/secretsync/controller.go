package secretsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
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
	fetchRetryOnConflictBackoff = 200 * time.Millisecond
)

// ReasonSecretIncomplete (Normal) says that a Secret is not written while
// a key its type requires comes only from optional objects the backend
// does not have (requiredKeys); it keeps what it held.
const ReasonSecretIncomplete = "SecretIncomplete"

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
	clock     clock.WithTicker
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
	// annotations are the class annotations its last fetch was parsed
	// with (spc.Class.Annotations).
	annotations map[string]string
	objects     []provider.Object
	files       map[string][]byte
	// dueAt is when the next scheduled fetch is due: the last fetch plus
	// schedule.Rotation of the interval.
	dueAt       time.Time
	failures    int
	nextAttempt time.Time
	force       bool
	managed     int
	// fetched is set by a fetch and cleared once the sync it belongs to
	// is counted.
	fetched bool
	// tplResolved are the resolved templates tplSet was compiled from,
	// rendered the last render.
	tplResolved []render.Template
	tplSet      *render.Set
	rendered    *render.Result
	// held are the Secrets (by name) the last sync did not write for want
	// of a required key's optional object, with the reason announced.
	held map[string]string
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
	st := r.state(key)
	get := r.configMaps(ctx, class.Namespace)
	r.mu.Lock()
	tset, terr := st.classTemplates(class, parsed, get)
	r.mu.Unlock()
	if terr != nil {
		// Admission refuses such a class; its raw objects still sync.
		r.warn(class, ReasonInvalidClass, "Parse", "SecretProviderClass %s: %s; its rendered files are not synced", key, terr)
	}
	if parsed.BuiltIn() {
		have, known := classFiles(parsed, templatePaths(tset))
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

	// absent are the files that may be missing from files: those of the
	// optional objects the backend does not have, and those of the
	// templates that read one and were not rendered.
	absent := parsed.OptionalPaths()
	if tset != nil {
		var skipped []string
		r.mu.Lock()
		files, skipped, err = st.withRendered(tset, files, absent)
		r.mu.Unlock()
		absent = withAbsent(absent, skipped)
		if err != nil {
			// The Secrets keep their last good content.
			r.warn(class, ReasonInvalidClass, "Render", "SecretProviderClass %s: %s; its Secrets are not updated", key, err)
			r.reportProblems(class, problems)
			return reconcile.Result{RequeueAfter: wait}, nil
		}
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
	held := map[string]string{}
	for _, s := range specs {
		sec, msgs, why := buildSecret(class, s, files, absent, owners)
		if why != "" {
			// A Secret whose type requires a key that only a missing
			// optional object provides keeps what it holds; said once,
			// when it starts (or its reason changes), not at every pass.
			held[s.name] = why
			if st.held[s.name] != why {
				r.event(class, nil, corev1.EventTypeNormal, ReasonSecretIncomplete, "Sync", "%s", why)
			}
			kept++
			continue
		}
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
	st.held = held
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
