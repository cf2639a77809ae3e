package secretsync

import (
	"context"
	"errors"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/spc"
)

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
	// The generation does not change for metadata, so the annotations
	// the parser reads (spc.ParseAnnotated: which objects are optional,
	// what a deleted one leaves) are compared too, as the node shim
	// compares them: an object made required must fail the fetch naming
	// it rather than sync from files fetched while it was optional. The
	// templates annotation needs no fetch: classTemplates recompiles and
	// the next render uses the new set.
	specChanged := st.generation != class.Generation || st.provider != parsed.Provider || !maps.Equal(st.annotations, parsed.Annotations)
	if specChanged {
		// Versions of another configuration must not make the provider
		// answer Unchanged for content it would now produce differently.
		st.objects, st.files, st.failures = nil, nil, 0
		r.mu.Lock()
		st.generation, st.provider, st.annotations = class.Generation, parsed.Provider, maps.Clone(parsed.Annotations)
		r.mu.Unlock()
	}
	idChanged := st.files != nil
	for _, c := range cands {
		if c.key == st.identityKey {
			idChanged = false
		}
	}
	due := st.files == nil || forced || idChanged || !now.Before(st.dueAt)
	if !due {
		return st.files, st.dueAt.Sub(now), nil
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
		wait := rotationWait(interval)
		st.dueAt, st.identityKey = r.clock.Now().Add(wait), c.key
		st.failures, st.nextAttempt = 0, time.Time{}
		st.fetched = true
		return st.files, wait, nil
	}

	// Every candidate failed: report, back off, keep what was synced.
	st.failures++
	limit := interval
	if pendingConsumer(consumers) && limit > maxPendingBackoff {
		// A pod may be waiting for the Secret to start.
		limit = maxPendingBackoff
	}
	backoff := schedule.Backoff(r.opts.MinBackoff, limit, st.failures)
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

// fetch fetches and merges the class's objects as candidate c, within the
// fetch timeout.
func (r *Reconciler) fetch(ctx context.Context, p provider.Provider, class *spc.Class, c candidate, st *classState) ([]provider.Object, []atomicdir.File, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
	defer cancel()
	start := r.clock.Now()
	defer func() { r.metrics.FetchSeconds.WithLabelValues(class.Provider).Observe(r.clock.Since(start).Seconds()) }()
	return provider.FetchMerged(ctx, p, provider.Request{Class: class, Identity: c.id, Permission: atomicdir.DefaultMode, Sizes: r.opts.Sizes}, st.objects)
}

// rotationWait is the wait before the next scheduled fetch of a class
// (schedule.Rotation, the agent's rule); a second for a non-positive
// interval, so that a reconcile always requeues.
func rotationWait(interval time.Duration) time.Duration {
	if w := schedule.Rotation(interval); w > 0 {
		return w
	}
	return time.Second
}
