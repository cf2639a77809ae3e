package atomicdir

import "testing"

// requireCapability is testenv.RequireCapability: a missing capability
// fails the test under CI and skips it elsewhere. This package's own tests
// cannot import testenv (testenv imports identity, which imports spc,
// which imports atomicdir), so the external test package sets it
// (capability_external_test.go).
func requireCapability(t testing.TB, capability string, err error) {
	t.Helper()
	RequireCapability(t, capability, err)
}

// RequireCapability is set to testenv.RequireCapability by the external
// test package; it is exported only within this package's tests.
var RequireCapability func(t testing.TB, capability string, err error)
