package agent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DisableDumping makes the agent process non-dumpable, which it must be
// before it reads a token or a secret. When the pod shares its process
// namespace and an app container runs with the agent's user, the kernel
// would otherwise let the app read /proc/<agent>/environ, /proc/<agent>/mem
// and the agent's own mount namespace through /proc/<agent>/root, where
// the projected provider tokens and the agent's copies of the secrets are.
// A non-dumpable process passes the ptrace access check only for callers
// with CAP_SYS_PTRACE, and it writes no core dump. Signals are not
// ptrace-checked: the app can still signal the agent, and the agent its
// reload-signal targets.
func DisableDumping() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the agent non-dumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	return nil
}
