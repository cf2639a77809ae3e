package csi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/schedule"
)

// StatusQueue writes SecretProviderClassPodStatus objects in the
// background, retrying with backoff until each is written or dropped.
//
// The write is off the NodePublishVolume path on purpose: the files are
// what the pod waits for, and an API server that is slow or briefly away
// must not fail a mount whose content was fetched. Only the latest wanted
// state of an object is written.
//
// It needs create, get and update on secretproviderclasspodstatuses.
type StatusQueue struct {
	w      client.Writer
	r      client.Reader
	events record.EventRecorder
	log    *slog.Logger
	q      workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu      sync.Mutex
	want    map[types.NamespacedName]*ssiv1.SecretProviderClassPodStatus
	failing map[types.NamespacedName]bool
	// known is the object as last written, so that the next write of the
	// same object is one update instead of create, get and update.
	known   map[types.NamespacedName]*ssiv1.SecretProviderClassPodStatus
	written int
}

// NewStatusQueue writes with w and reads existing objects with r (an API
// reader: the shim does not cache statuses); clk times the retries of
// failed writes. events, log and clk may be nil (clk: the real clock).
func NewStatusQueue(w client.Writer, r client.Reader, events record.EventRecorder, log *slog.Logger, clk clock.WithTicker) *StatusQueue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rl := workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](200*time.Millisecond, 2*time.Minute)
	return &StatusQueue{
		w: w, r: r, events: events, log: log,
		q: workqueue.NewTypedRateLimitingQueueWithConfig(rl,
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Clock: schedule.Clock(clk)}),
		want:    map[types.NamespacedName]*ssiv1.SecretProviderClassPodStatus{},
		failing: map[types.NamespacedName]bool{},
		known:   map[types.NamespacedName]*ssiv1.SecretProviderClassPodStatus{},
	}
}

// Record implements StatusRecorder.
func (s *StatusQueue) Record(st *ssiv1.SecretProviderClassPodStatus) {
	key := types.NamespacedName{Namespace: st.Namespace, Name: st.Name}
	s.mu.Lock()
	s.want[key] = st
	s.mu.Unlock()
	s.q.Add(key)
}

// Drop implements StatusRecorder: a pending write is abandoned (the volume
// was unpublished). A written object stays; the pod owns it.
func (s *StatusQueue) Drop(namespace, name string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	s.mu.Lock()
	delete(s.want, key)
	delete(s.failing, key)
	delete(s.known, key)
	s.mu.Unlock()
}

// Pending returns the number of objects not written yet.
func (s *StatusQueue) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.want)
}

// Written returns the number of successful writes so far.
func (s *StatusQueue) Written() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Run writes until ctx is done.
func (s *StatusQueue) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	s.q.ShutDown()
	wg.Wait()
}

func (s *StatusQueue) next(ctx context.Context) bool {
	key, shutdown := s.q.Get()
	if shutdown {
		return false
	}
	defer s.q.Done(key)
	st, err := s.sync(ctx, key)
	if err == nil {
		s.q.Forget(key)
		return true
	}
	s.mu.Lock()
	_, still := s.want[key]
	first := still && !s.failing[key]
	if still {
		s.failing[key] = true
	}
	s.mu.Unlock()
	if !still || ctx.Err() != nil {
		s.q.Forget(key)
		return true
	}
	s.log.Warn("record SecretProviderClassPodStatus failed; retrying", "status", key.String(), "err", err)
	if first && s.events != nil && len(st.OwnerReferences) == 1 {
		o := st.OwnerReferences[0]
		pod := &corev1.Pod{}
		pod.Namespace, pod.Name, pod.UID = st.Namespace, o.Name, o.UID
		s.events.Eventf(pod, corev1.EventTypeWarning, ReasonStatusWriteFailed,
			"record SecretProviderClassPodStatus %s (the files are mounted; retrying): %v", st.Name, err)
	}
	s.q.AddRateLimited(key)
	return true
}

// sync writes the wanted state of key: create, or on conflict with an
// existing object, get and update it.
func (s *StatusQueue) sync(ctx context.Context, key types.NamespacedName) (*ssiv1.SecretProviderClassPodStatus, error) {
	s.mu.Lock()
	st := s.want[key]
	s.mu.Unlock()
	if st == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.mu.Lock()
	known := s.known[key]
	s.mu.Unlock()
	var (
		written *ssiv1.SecretProviderClassPodStatus
		err     error
	)
	if known != nil {
		written, err = s.update(ctx, known.DeepCopy(), st)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			known = nil // changed or deleted behind our back: start over
		}
	}
	if known == nil {
		written = st.DeepCopy()
		err = s.w.Create(ctx, written)
		if apierrors.IsAlreadyExists(err) {
			cur := &ssiv1.SecretProviderClassPodStatus{}
			if err := s.r.Get(ctx, key, cur); err != nil {
				return st, err
			}
			written, err = s.update(ctx, cur, st)
		}
	}
	if err != nil {
		s.mu.Lock()
		delete(s.known, key)
		s.mu.Unlock()
		return st, err
	}
	s.mu.Lock()
	s.known[key] = written
	if s.want[key] == st {
		delete(s.want, key)
	}
	delete(s.failing, key)
	s.written++
	s.mu.Unlock()
	s.log.Debug("recorded SecretProviderClassPodStatus", "status", key.String(), "objects", len(st.Status.Objects))
	return st, nil
}

// update writes the wanted labels, owners and status onto cur.
func (s *StatusQueue) update(ctx context.Context, cur, st *ssiv1.SecretProviderClassPodStatus) (*ssiv1.SecretProviderClassPodStatus, error) {
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	for k, v := range st.Labels {
		cur.Labels[k] = v
	}
	cur.OwnerReferences = st.OwnerReferences
	cur.Status = st.Status
	if err := s.w.Update(ctx, cur); err != nil {
		return nil, err
	}
	return cur, nil
}

// podOwner is the owner reference upstream sets: the pod, without the
// controller or blockOwnerDeletion flags.
func podOwner(pod identity.Pod) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: types.UID(pod.UID)}}
}
