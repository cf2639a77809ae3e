package secretsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// jwtMinter mints unsigned JWT-shaped tokens carrying the claims a fake
// provider reads.
type jwtMinter struct {
	calls []TokenRequest
	err   error
}

func (m *jwtMinter) Mint(_ context.Context, req TokenRequest) (string, error) {
	m.calls = append(m.calls, req)
	if m.err != nil {
		return "", m.err
	}
	var c tokenClaims
	c.Sub = "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount
	b, _ := json.Marshal(c)
	return "h." + base64.RawURLEncoding.EncodeToString(b) + ".s", nil
}

// The scheduling of fetches, with an injected clock: first fetch, no
// fetch before the due point schedule.Rotation put in the last tenth of
// the rotation interval, a fetch when the class or identity changes or a
// provider wakes, and a doubling backoff (schedule.Backoff: a random point
// of its upper half) after failures, capped at the interval, or at 30s
// while a consumer is Pending.
func TestFetchSchedule(t *testing.T) {
	const interval = 2 * time.Minute
	type step struct {
		advance time.Duration
		// toDue advances the clock to beforeDue before the point the
		// previous step's wait ends at, instead of by advance.
		toDue     bool
		beforeDue time.Duration
		mutate    func(*ssiv1.SecretProviderClass, *[]consumer, *fakeProvider, *Reconciler, *classState)
		wantFetch bool
		// The wait returned: wantWait exactly; wantLeft what was left of
		// the previous wait; wantRotation within the last tenth of the
		// interval; wantBackoff within the upper half of this backoff.
		wantWait     time.Duration
		wantLeft     bool
		wantRotation bool
		wantBackoff  time.Duration
		wantErr      bool
	}
	running := func(name, sa string) consumer {
		return consumer{serviceAccount: sa, pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}}
	}
	failing := func(c *ssiv1.SecretProviderClass, _ *[]consumer, f *fakeProvider, _ *Reconciler, _ *classState) {
		f.mu.Lock()
		delete(f.content, "db-password")
		f.mu.Unlock()
	}
	cases := map[string]struct {
		consumers []consumer
		steps     []step
	}{
		"first fetch, then only at the due point": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true, wantRotation: true},
				{advance: time.Minute, wantLeft: true},
				{toDue: true, beforeDue: time.Second, wantWait: time.Second},
				{advance: time.Second, wantFetch: true, wantRotation: true},
			},
		},
		"class change and provider wake fetch at once": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					c.Generation++
				}, wantFetch: true, wantRotation: true},
				{advance: time.Second, wantLeft: true},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, r *Reconciler, _ *classState) {
					r.forceProvider("vault")
				}, wantFetch: true, wantRotation: true},
				{advance: time.Second, wantLeft: true},
			},
		},
		// Generation does not change for metadata: an object made
		// required (or optional) must not be synced from files fetched
		// when it was optional, nor wait for the next rotation.
		"an optional-objects annotation change fetches at once; another annotation does not": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					c.Annotations = map[string]string{spc.AnnotationOptionalObjects: "db-user"}
				}, wantFetch: true, wantRotation: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					c.Annotations["example.com/note"] = "x"
				}, wantLeft: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					c.Annotations[spc.AnnotationOptionalOnDelete] = spc.OnDeleteKeep
				}, wantFetch: true, wantRotation: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					delete(c.Annotations, spc.AnnotationOptionalObjects)
					delete(c.Annotations, spc.AnnotationOptionalOnDelete)
				}, wantFetch: true, wantRotation: true},
			},
		},
		"identity change fetches; a second consumer of the same identity does not": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, cs *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					*cs = append(*cs, running("b", "app"))
				}, wantLeft: true},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, cs *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					*cs = []consumer{running("c", "other")}
				}, wantFetch: true, wantRotation: true},
			},
		},
		"backoff doubles up to the interval": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{mutate: failing, wantFetch: true, wantBackoff: 2 * time.Second, wantErr: true},
				{advance: 500 * time.Millisecond, wantLeft: true},
				{toDue: true, beforeDue: time.Nanosecond, wantWait: time.Nanosecond},
				{advance: time.Nanosecond, wantFetch: true, wantBackoff: 4 * time.Second, wantErr: true},
				{toDue: true, wantFetch: true, wantBackoff: 8 * time.Second, wantErr: true},
				{toDue: true, mutate: func(_ *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, st *classState) {
					st.failures = 10
				},
					wantFetch: true, wantBackoff: interval, wantErr: true},
			},
		},
		"backoff capped at 30s while a consumer is pending": {
			consumers: []consumer{{serviceAccount: "app", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}}},
			steps: []step{
				{wantFetch: true},
				{advance: interval, mutate: func(c *ssiv1.SecretProviderClass, cs *[]consumer, f *fakeProvider, r *Reconciler, st *classState) {
					failing(c, cs, f, r, st)
					st.failures = 10
				}, wantFetch: true, wantBackoff: maxPendingBackoff, wantErr: true},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			fp := newFake("vault", map[string]string{"db-password": "pw", "db-user": "app"})
			minter := &jwtMinter{}
			r := &Reconciler{
				shared:    fake.NewClientBuilder().WithScheme(scheme.New()).Build(),
				providers: provider.NewSet(fp),
				tokens:    &tokenCache{minter: minter, expiration: DefaultTokenExpiration, clock: clk},
				recorder:  record.NewFakeRecorder(100),
				metrics:   NewMetrics(),
				clock:     clk,
				opts:      Options{RotationInterval: interval, MinBackoff: DefaultMinBackoff, FetchTimeout: time.Second, WarningRepeat: time.Minute},
				log:       logr.Discard(),
				states:    map[types.NamespacedName]*classState{},
				recent:    map[string]time.Time{},
			}
			class := vaultClass(t, "ns", "db", dbPasswordSecret)
			class.Generation = 1
			consumers := append([]consumer(nil), tc.consumers...)
			st := r.state(types.NamespacedName{Namespace: "ns", Name: "db"})
			var lastWait time.Duration
			for i, s := range tc.steps {
				advance := s.advance
				if s.toDue {
					advance = lastWait - s.beforeDue
				}
				clk.Step(advance)
				if s.mutate != nil {
					s.mutate(class, &consumers, fp, r, st)
				}
				parsed, err := spc.Parse(class)
				if err != nil {
					t.Fatal(err)
				}
				before := len(fp.callsIn("ns"))
				_, wait, err := r.fetchIfDue(context.Background(), st, class, parsed, consumers)
				fetched := len(fp.callsIn("ns")) > before
				if fetched != s.wantFetch {
					t.Errorf("step %d: fetched %v, want %v", i, fetched, s.wantFetch)
				}
				if (err != nil) != s.wantErr {
					t.Errorf("step %d: error %v, want error %v", i, err, s.wantErr)
				}
				switch {
				case s.wantWait != 0 && wait != s.wantWait:
					t.Errorf("step %d: wait %s, want %s", i, wait, s.wantWait)
				case s.wantLeft && wait != lastWait-advance:
					t.Errorf("step %d: wait %s, want what was left of %s after %s", i, wait, lastWait, advance)
				case s.wantRotation && (wait < interval-interval/10 || wait > interval):
					t.Errorf("step %d: wait %s, want within the last tenth of %s", i, wait, interval)
				case s.wantBackoff != 0 && (wait < s.wantBackoff/2 || wait > s.wantBackoff):
					t.Errorf("step %d: wait %s, want within [%s, %s]", i, wait, s.wantBackoff/2, s.wantBackoff)
				}
				lastWait = wait
			}
			for _, m := range minter.calls {
				if m.Expiration != DefaultTokenExpiration || m.PodName == "" {
					t.Errorf("token request %+v: want a pod-bound token of %s", m, DefaultTokenExpiration)
				}
			}
		})
	}
	t.Run("token failure is reported as such", func(t *testing.T) {
		if !retryOtherIdentity(errors.Join(errToken, errors.New("x"))) {
			t.Error("token errors let another identity be tried")
		}
	})
}
