package vault

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
)

// logCapture records every line a Provider logs (at debug level and up)
// and every error a test saw, so that a test can prove no secret value
// leaked into either.
type logCapture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	errs []string
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// newLogCapture returns a logger writing into a capture, and checks at the
// end of the test that none of the values registered with secret (nor
// given here) appears in any captured line or error.
func newLogCapture(t testing.TB, secrets ...string) (*slog.Logger, *logCapture) {
	c := &logCapture{}
	log := slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() { c.assertClean(t, secrets...) })
	return log, c
}

// record keeps err (if any) for the final check.
func (c *logCapture) record(err error) {
	if err != nil {
		c.mu.Lock()
		c.errs = append(c.errs, err.Error())
		c.mu.Unlock()
	}
}

// assertClean fails the test if a secret appears in a log line or error.
func (c *logCapture) assertClean(t testing.TB, secrets ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	logs := c.buf.String()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("a secret value appears in the provider's logs:\n%s", logs)
		}
		for _, e := range c.errs {
			if strings.Contains(e, s) {
				t.Errorf("a secret value appears in an error: %s", e)
			}
		}
	}
}

// providerError asserts err is a *provider.Error with the reason and that
// its message names the class and object and contains every want string.
func providerError(t testing.TB, err error, class, object string, reason provider.Reason, want ...string) {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	if pe.Reason != reason {
		t.Errorf("reason = %s, want %s (error: %v)", pe.Reason, reason, err)
	}
	if pe.Provider != Name {
		t.Errorf("provider = %q, want %q", pe.Provider, Name)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !strings.Contains(msg, class) {
		t.Errorf("error does not name class %q: %s", class, msg)
	}
	if object != "" && (pe.Object != object || !strings.Contains(msg, `"`+object+`"`)) {
		t.Errorf("error does not name object %q: %s", object, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not contain %q: %s", w, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
}
