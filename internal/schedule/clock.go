package schedule

import "k8s.io/utils/clock"

// Clock returns c, or the real clock when c is nil.
//
// The packages that wait or read time for scheduling (agent, secretsync,
// csi and its status queue, the aws and vault providers) take a
// clock.WithTicker of k8s.io/utils/clock in their options, nil meaning the
// real clock, and their tests pass the FakeClock of
// k8s.io/utils/clock/testing. This one interface, because the sync
// controller and client-go's workqueue already use it, the fake's Step
// and Waiters let a test move time to the exact renewal or retry point
// instead of sleeping, and the package needs nothing beyond the standard
// library, so the agent binary does not grow. Request timeouts stay
// context deadlines on the real clock.
func Clock(c clock.WithTicker) clock.WithTicker {
	if c == nil {
		return clock.RealClock{}
	}
	return c
}
