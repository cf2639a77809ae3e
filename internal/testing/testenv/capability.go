package testenv

import (
	"fmt"
	"os"
	"testing"
)

// CI reports whether the tests run under continuous integration: the
// environment variable CI is set to anything but "", "0" or "false" (.ci/run
// sets CI=1, as most CI services set CI=true).
func CI() bool {
	switch os.Getenv("CI") {
	case "", "0", "false":
		return false
	}
	return true
}

// RequireCapability stops t when the machine lacks a capability the test
// needs: err is nil when the capability is there, else the cause, which
// should say how to get it. Under CI (see CI) the test fails, so that a CI
// run in an environment without the capability is red rather than green
// with the test unrun; elsewhere it skips, as a developer's laptop may not
// be able to run everything. capability names what is missing, as the
// README's list of prerequisites does ("root", "tmpfs mounts",
// "IPv6 loopback", ...).
//
// It is not for -short: under -short, integration tests skip whatever the
// machine can do (see SkipIfShort).
func RequireCapability(t testing.TB, capability string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if CI() {
		t.Fatalf("missing capability %s: %v (CI is set, so this fails instead of skipping; see the README's Prerequisites)", capability, err)
		return
	}
	t.Skipf("missing capability %s: %v (skipped; with CI set this fails)", capability, err)
}

// AsRoot is nil when the process runs as root, else an error saying so; it
// is the err of RequireCapability(t, "root", testenv.AsRoot()).
func AsRoot() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("running as uid %d, not root: run the tests as root (e.g. sudo -E make test)", uid)
	}
	return nil
}
