package testenv

import (
	"errors"
	"fmt"
	"testing"
)

// stoppingT records how RequireCapability stops a test instead of stopping
// this one.
type stoppingT struct {
	testing.TB
	fatal, skip string
}

func (s *stoppingT) Helper() {}
func (s *stoppingT) Fatalf(format string, args ...any) {
	s.fatal = fmt.Sprintf(format, args...)
}
func (s *stoppingT) Skipf(format string, args ...any) {
	s.skip = fmt.Sprintf(format, args...)
}

func TestRequireCapability(t *testing.T) {
	missing := errors.New("cannot mount tmpfs: operation not permitted")
	for name, tc := range map[string]struct {
		ci    string
		err   error
		fatal string
		skip  string
	}{
		"present, CI": {ci: "1", err: nil},
		"present":     {ci: "", err: nil},
		"missing, CI=1": {ci: "1", err: missing,
			fatal: "missing capability tmpfs mounts: cannot mount tmpfs: operation not permitted (CI is set, so this fails instead of skipping; see the README's Prerequisites)"},
		"missing, CI=true": {ci: "true", err: missing,
			fatal: "missing capability tmpfs mounts: cannot mount tmpfs: operation not permitted (CI is set, so this fails instead of skipping; see the README's Prerequisites)"},
		"missing, no CI": {ci: "", err: missing,
			skip: "missing capability tmpfs mounts: cannot mount tmpfs: operation not permitted (skipped; with CI set this fails)"},
		"missing, CI=false": {ci: "false", err: missing,
			skip: "missing capability tmpfs mounts: cannot mount tmpfs: operation not permitted (skipped; with CI set this fails)"},
		"missing, CI=0": {ci: "0", err: missing,
			skip: "missing capability tmpfs mounts: cannot mount tmpfs: operation not permitted (skipped; with CI set this fails)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			st := &stoppingT{TB: t}
			RequireCapability(st, "tmpfs mounts", tc.err)
			if st.fatal != tc.fatal || st.skip != tc.skip {
				t.Errorf("CI=%q: failed with %q, skipped with %q; want failed with %q, skipped with %q", tc.ci, st.fatal, st.skip, tc.fatal, tc.skip)
			}
		})
	}
}
