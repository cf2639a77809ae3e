package agent

import (
	"errors"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/provider"
)

// TestRotationScheduleOnFakeClock drives the rotation loop with a fake
// clock: a rotation happens in the last tenth of the interval, never
// before it and never after the interval (schedule.Rotation), and a failed
// rotation is retried within the upper half of a doubling backoff
// (schedule.Backoff).
func TestRotationScheduleOnFakeClock(t *testing.T) {
	const interval = time.Minute
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f := newFake("fake", map[string]string{"db-password": "value-on-a-fake-clock-01"})
	cfg := testConfig(t, agentconfig.ModeSidecar, interval, "app")
	h := startAgent(t, cfg, Options{Providers: provider.NewSet(f), Clock: clk, RetryBase: time.Second, RetryMax: interval})
	h.waitReady(5 * time.Second)

	// next checks that the loop waits on the clock, that stepping to just
	// before earliest does not make it fetch, and that stepping on to
	// latest does.
	next := func(what string, earliest, latest time.Duration) {
		t.Helper()
		eventually(t, 5*time.Second, "the loop to wait on the clock", func() bool { return clk.Waiters() == 1 })
		n := f.callCount()
		clk.Step(earliest - time.Nanosecond)
		if clk.Waiters() != 1 {
			t.Fatalf("%s: the loop's timer fired before %s", what, earliest)
		}
		clk.Step(latest - earliest + time.Nanosecond)
		eventually(t, 5*time.Second, what, func() bool { return f.callCount() == n+1 })
	}
	for range 3 {
		next("a rotation in the last tenth of the interval", interval-interval/10, interval)
	}
	f.setFail(&provider.Error{Class: "team-a/app", Provider: "fake", Reason: provider.ReasonUnavailable, Err: errors.New("connection refused")})
	next("the failing rotation", interval-interval/10, interval)
	next("the first retry, within the upper half of 1s", time.Second/2, time.Second)
	next("the second retry, within the upper half of 2s", time.Second, 2*time.Second)
	f.setFail(nil)
	next("the third retry, within the upper half of 4s", 2*time.Second, 4*time.Second)
	next("a rotation after the recovery", interval-interval/10, interval)
}
