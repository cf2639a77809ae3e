package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// Shared is one control plane that all the tests of a package share: the
// first test that asks for it starts it, and the package's TestMain stops
// it through Run. Tests keep apart by working in namespaces of their own.
type Shared struct {
	opts Options
	once sync.Once
	env  *Env
	err  error
}

// NewShared returns a shared control plane started with opts on first use.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Env returns the control plane, starting it on the first call; it skips
// t in -short mode and fails it when the control plane cannot start.
func (s *Shared) Env(t testing.TB) *Env {
	t.Helper()
	SkipIfShort(t)
	s.once.Do(func() { s.env, s.err = StartEnv(s.opts) })
	if s.err != nil {
		t.Fatalf("start control plane: %v", s.err)
	}
	return s.env
}

// Run runs the package's tests and then stops the control plane if a test
// started it; TestMain passes its result to os.Exit.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
	return code
}
