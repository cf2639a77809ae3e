package agent

import (
	"fmt"
	"os"
	"testing"
)

// requireCapability has the signature and behaviour of
// testenv.RequireCapability, which another branch adds; the integrator
// replaces the calls with it and deletes this file. It stops t when err
// (the cause, saying how to get the capability) is not nil: under CI (env
// CI set to anything but "", "0" or "false") the test fails naming the
// capability, so a CI run without it is red rather than green with the
// test unrun; elsewhere it skips.
func requireCapability(t testing.TB, capability string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	switch os.Getenv("CI") {
	case "", "0", "false":
		t.Skipf("missing capability %s: %v (skipped; with CI set this fails)", capability, err)
	}
	t.Fatalf("missing capability %s: %v (CI is set, so this fails instead of skipping; see the README's Prerequisites)", capability, err)
}

// asRoot is testenv.AsRoot: nil when the process runs as root.
func asRoot() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("running as uid %d, not root: run the tests as root (e.g. sudo -E make test)", uid)
	}
	return nil
}
