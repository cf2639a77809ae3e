// Package schedule holds the timing rules shared by the components that
// fetch on a schedule (the agent's rotation loop and the sync controller):
// when within an interval a rotation happens (Rotation), and how long to
// wait before retrying a failure (Backoff). Both components call these
// functions, so a pod's files and a synced Secret follow the same rule.
// It also names the one clock type of the product (see Clock).
package schedule

import (
	"math/rand/v2"
	"time"
)

// Rotation returns the wait before the next scheduled fetch of an interval
// d: a random point of its last tenth, never later than d. Never later,
// because the interval is a promise to the user: a change in the backend
// reaches the files (or the Secret) within one interval. Spread over a
// tenth, because many pods and classes created together (a Deployment's
// replicas, a chart's classes) must not fetch from the backend in step.
// A non-positive d returns 0.
func Rotation(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - rand.N(d/10+1) //nolint:gosec // spreading load needs no unpredictability
}

// Backoff returns the wait before retry number n (n >= 1) after
// consecutive failures: base doubled n-1 times, capped at limit, then a
// random point of its upper half. Exponential, so that a backend that is
// down is not hammered; the random half, so that the pods and classes
// that failed together on one outage do not retry in step; the upper
// half, so that the wait still grows with n. A non-positive base or limit
// counts as the other; both non-positive return 0.
func Backoff(base, limit time.Duration, n int) time.Duration {
	if base <= 0 {
		base = limit
	}
	if limit <= 0 {
		limit = base
	}
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // spreading load needs no unpredictability
}
