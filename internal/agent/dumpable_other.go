//go:build !linux

package agent

import (
	"errors"
	"runtime"
)

// DisableDumping is Linux-only: `ssi-agent run` runs in Linux pods and
// refuses to start elsewhere rather than start without the protection.
func DisableDumping() error {
	return errors.New("ssi-agent run needs Linux (prctl PR_SET_DUMPABLE); this is " + runtime.GOOS)
}
