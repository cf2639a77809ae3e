package schedule

import "k8s.io/utils/clock"

// The packages that wait or read time for scheduling (agent, secretsync,
// csi, the providers) take a clock.WithTicker of k8s.io/utils/clock in
// their options, nil meaning the real clock, and their tests pass the
// FakeClock of k8s.io/utils/clock/testing. One interface, because the sync
// controller already used it with controller-runtime, the fake's Step and
// Waiters let a test move time to the exact renewal or retry point
// instead of sleeping, and the package has no dependencies beyond the
// standard library, so the agent image does not grow.

// Clock returns c, or the real clock when c is nil.
func Clock(c clock.WithTicker) clock.WithTicker {
	if c == nil {
		return clock.RealClock{}
	}
	return c
}
