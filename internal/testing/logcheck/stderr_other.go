//go:build !linux && !darwin

package logcheck

import "testing"

// CaptureStderr is not available on this system: standard error is not
// captured, which the test log says.
func (r *Recorder) CaptureStderr(t testing.TB) {
	t.Helper()
	t.Log("logcheck: standard error is not captured on this system")
}
