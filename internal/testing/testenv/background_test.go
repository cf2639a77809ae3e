package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recordingT records what Background reports instead of failing the test.
type recordingT struct {
	testing.TB
	errs     []string
	cleanups int
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recordingT) Cleanup(func()) { r.cleanups++ }

func TestBackground(t *testing.T) {
	t.Run("clean stop", func(t *testing.T) {
		rt := &recordingT{TB: t}
		ctx, cancel := context.WithCancel(context.Background())
		stop := Background(rt, "server", 5*time.Second, cancel, func() error { <-ctx.Done(); return nil })
		stop()
		stop() // a second call (the cleanup) does nothing
		if len(rt.errs) != 0 || rt.cleanups != 1 {
			t.Errorf("errors %q, cleanups %d; want none and one", rt.errs, rt.cleanups)
		}
	})
	t.Run("error on stop", func(t *testing.T) {
		rt := &recordingT{TB: t}
		ctx, cancel := context.WithCancel(context.Background())
		stop := Background(rt, "server", 5*time.Second, cancel, func() error { <-ctx.Done(); return errors.New("boom") })
		stop()
		if len(rt.errs) != 1 || rt.errs[0] != "server: boom" {
			t.Errorf("errors %q, want the server's", rt.errs)
		}
	})
	t.Run("does not stop", func(t *testing.T) {
		rt := &recordingT{TB: t}
		release := make(chan struct{})
		defer close(release)
		stop := Background(rt, "server", 50*time.Millisecond, func() {}, func() error { <-release; return nil })
		stop()
		if len(rt.errs) != 1 || !strings.Contains(rt.errs[0], "server did not stop within 50ms") {
			t.Errorf("errors %q", rt.errs)
		}
	})
}
