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
// fetch before the rotation interval, a fetch when the class or identity
// changes or a provider wakes, and a doubling backoff after failures,
// capped at the interval, or at 30s while a consumer is Pending.
func TestFetchSchedule(t *testing.T) {
	const interval = 2 * time.Minute
	type step struct {
		advance   time.Duration
		mutate    func(*ssiv1.SecretProviderClass, *[]consumer, *fakeProvider, *Reconciler, *classState)
		wantFetch bool
		wantWait  time.Duration // exact, or 0 to skip; jitter adds up to 10%
		wantErr   bool
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
		"first fetch, then only after the interval": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true, wantWait: interval},
				{advance: time.Minute, wantWait: time.Minute},
				{advance: 59 * time.Second, wantWait: time.Second},
				{advance: time.Second, wantFetch: true, wantWait: interval},
			},
		},
		"class change and provider wake fetch at once": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true},
				{advance: time.Second, mutate: func(c *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					c.Generation++
				}, wantFetch: true},
				{advance: time.Second},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, r *Reconciler, _ *classState) {
					r.forceProvider("vault")
				}, wantFetch: true},
				{advance: time.Second},
			},
		},
		"identity change fetches; a second consumer of the same identity does not": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{wantFetch: true},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, cs *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					*cs = append(*cs, running("b", "app"))
				}},
				{advance: time.Second, mutate: func(_ *ssiv1.SecretProviderClass, cs *[]consumer, _ *fakeProvider, _ *Reconciler, _ *classState) {
					*cs = []consumer{running("c", "other")}
				}, wantFetch: true},
			},
		},
		"backoff doubles up to the interval": {
			consumers: []consumer{running("a", "app")},
			steps: []step{
				{mutate: failing, wantFetch: true, wantWait: 2 * time.Second, wantErr: true},
				{advance: time.Second, wantWait: time.Second},
				{advance: time.Second, wantFetch: true, wantWait: 4 * time.Second, wantErr: true},
				{advance: 4 * time.Second, wantFetch: true, wantWait: 8 * time.Second, wantErr: true},
				{advance: 8 * time.Second, mutate: func(_ *ssiv1.SecretProviderClass, _ *[]consumer, _ *fakeProvider, _ *Reconciler, st *classState) {
					st.failures = 10
				},
					wantFetch: true, wantWait: interval, wantErr: true},
			},
		},
		"backoff capped at 30s while a consumer is pending": {
			consumers: []consumer{{serviceAccount: "app", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}}},
			steps: []step{
				{wantFetch: true},
				{advance: interval, mutate: func(c *ssiv1.SecretProviderClass, cs *[]consumer, f *fakeProvider, r *Reconciler, st *classState) {
					failing(c, cs, f, r, st)
					st.failures = 10
				}, wantFetch: true, wantWait: maxPendingBackoff, wantErr: true},
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
			for i, s := range tc.steps {
				clk.Step(s.advance)
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
				if s.wantWait != 0 && (wait < s.wantWait || wait > s.wantWait+s.wantWait/10+time.Nanosecond) {
					t.Errorf("step %d: wait %s, want %s (+10%% jitter at most)", i, wait, s.wantWait)
				}
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
