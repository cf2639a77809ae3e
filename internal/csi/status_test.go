package csi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/scheme"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusQueue(t *testing.T) {
	pod := identity.Pod{Namespace: "team-a", Name: "web-0", UID: "uid-2"}
	stale := NewPodStatus(identity.Pod{Namespace: "team-a", Name: "web-0", UID: "uid-1"}, "db", "/old", "node-0", map[string]string{"a": "1"})
	stale.Labels["keep"] = "me"
	tests := map[string]struct {
		existing  []client.Object
		failFirst int
		versions  map[string]string
	}{
		"create":                      {versions: map[string]string{"b": "2", "a": "1"}},
		"update an existing object":   {existing: []client.Object{stale}, versions: map[string]string{"a": "9"}},
		"retry after API errors":      {failFirst: 3, versions: map[string]string{"a": "1"}},
		"update after errors as well": {existing: []client.Object{stale}, failFirst: 2, versions: map[string]string{"a": "3"}},
	}
	// Failed writes are retried 200ms after the first failure, doubling.
	retryDelays := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			start := clk.Now()
			var mu sync.Mutex
			var createsAt []time.Duration
			var fails atomic.Int32
			fails.Store(int32(tc.failFirst))
			inject := func(err error) error {
				mu.Lock()
				createsAt = append(createsAt, clk.Since(start))
				mu.Unlock()
				if fails.Add(-1) >= 0 {
					return errors.New("etcdserver: request timed out")
				}
				return err
			}
			base := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(tc.existing...)
			c := base.WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					if err := inject(nil); err != nil {
						return err
					}
					return c.Create(ctx, obj, opts...)
				},
			}).Build()
			events := record.NewFakeRecorder(10)
			q := NewStatusQueue(c, c, events, nil, clk)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { q.Run(ctx, 1); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			want := NewPodStatus(pod, "db", "/var/lib/kubelet/pods/uid-2/volumes/kubernetes.io~csi/s/mount", "node-1", tc.versions)
			q.Record(want)
			// Each retry waits on the clock (with the queue's heartbeat
			// ticker); step to it.
			var wantAt []time.Duration
			var at time.Duration
			for i := 0; i < tc.failFirst; i++ {
				wantAt = append(wantAt, at)
				waitFor(t, "a retry to wait on the clock", func() bool { return clk.Waiters() == 2 })
				clk.Step(retryDelays[i])
				at += retryDelays[i]
			}
			wantAt = append(wantAt, at)
			waitFor(t, "the status to be written", func() bool { return q.Pending() == 0 })
			mu.Lock()
			if fmt.Sprint(createsAt) != fmt.Sprint(wantAt) {
				t.Errorf("creates at %v, want %v", createsAt, wantAt)
			}
			mu.Unlock()

			got := &ssiv1.SecretProviderClassPodStatus{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team-a", Name: "web-0-team-a-db"}, got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Status, want.Status) {
				t.Errorf("status = %+v\nwant %+v", got.Status, want.Status)
			}
			if !reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
				t.Errorf("owners = %+v", got.OwnerReferences)
			}
			if got.Labels[NodeLabel] != "node-1" {
				t.Errorf("labels = %v", got.Labels)
			}
			if len(tc.existing) > 0 && got.Labels["keep"] != "me" {
				t.Errorf("update dropped a foreign label: %v", got.Labels)
			}
			if tc.failFirst > 0 {
				select {
				case e := <-events.Events:
					if !strings.HasPrefix(e, "Warning FailedToRecordMountStatus ") || !strings.Contains(e, "request timed out") {
						t.Errorf("event = %q", e)
					}
				default:
					t.Error("no event after failed writes")
				}
				select {
				case e := <-events.Events:
					t.Errorf("more than one event for one failing object: %q", e)
				default:
				}
			}
		})
	}
}

func TestStatusQueueDrop(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.New()).Build()
	q := NewStatusQueue(c, c, nil, nil, nil)
	st := NewPodStatus(identity.Pod{Namespace: "ns", Name: "p", UID: "u"}, "db", "/t", "n", nil)
	q.Record(st)
	q.Drop("ns", st.Name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, 1); close(done) }()
	waitFor(t, "the queue to drain", func() bool { return q.q.Len() == 0 })
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	var list ssiv1.SecretProviderClassPodStatusList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 || q.Written() != 0 {
		t.Errorf("a dropped status was written: %d objects", len(list.Items))
	}
}

// TestStatusQueueKnownObject: once written, the next write of the same
// object is a single update; a conflict (someone else changed it) falls
// back to get and update.
func TestStatusQueueKnownObject(t *testing.T) {
	var creates, gets, updates atomic.Int32
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			creates.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			updates.Add(1)
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	q := NewStatusQueue(c, c, nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	pod := identity.Pod{Namespace: "ns", Name: "p", UID: "u"}
	write := func(v string) {
		t.Helper()
		n := q.Written()
		q.Record(NewPodStatus(pod, "db", "/t", "node", map[string]string{"a": v}))
		waitFor(t, "write "+v, func() bool { return q.Written() == n+1 })
	}
	counts := func() [3]int32 { return [3]int32{creates.Load(), gets.Load(), updates.Load()} }

	write("1")
	if got := counts(); got != [3]int32{1, 0, 0} {
		t.Errorf("first write: create/get/update = %v", got)
	}
	write("2")
	if got := counts(); got != [3]int32{1, 0, 1} {
		t.Errorf("second write: create/get/update = %v, want one update more", got)
	}
	// Someone else updates the object: our resourceVersion is stale.
	cur := &ssiv1.SecretProviderClassPodStatus{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "p-ns-db"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Labels["other"] = "x"
	if err := c.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	write("3")
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "p-ns-db"}, cur); err != nil {
		t.Fatal(err)
	}
	if cur.Status.Objects[0].Version != "3" || cur.Labels["other"] != "x" {
		t.Errorf("after a conflict: %+v labels %v", cur.Status.Objects, cur.Labels)
	}
}
