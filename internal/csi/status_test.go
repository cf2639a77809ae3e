package csi

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
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
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var fails atomic.Int32
			fails.Store(int32(tc.failFirst))
			inject := func(err error) error {
				if fails.Add(-1) >= 0 {
					return errors.New("etcdserver: request timed out")
				}
				return err
			}
			base := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(tc.existing...)
			c := base.WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					if err := inject(nil); err != nil {
						return err
					}
					return c.Create(ctx, obj, opts...)
				},
			}).Build()
			events := record.NewFakeRecorder(10)
			q := NewStatusQueue(c, c, events, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { q.Run(ctx, 1); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			want := NewPodStatus(pod, "db", "/var/lib/kubelet/pods/uid-2/volumes/kubernetes.io~csi/s/mount", "node-1", tc.versions)
			q.Record(want)
			waitFor(t, "the status to be written", func() bool { return q.Pending() == 0 })

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
	c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	q := NewStatusQueue(c, c, nil, nil)
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
