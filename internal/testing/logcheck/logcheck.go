// Package logcheck captures everything a component logs during a test suite
// and proves that no secret value appears in it. Tests register the values
// they put into backends (Secret); a TestMain that runs the suite through
// Main fails the suite when any registered value, or a common encoding of
// it, shows up in any captured line.
//
// It is test support shipped as a normal package so that every package's
// tests (the agent's, each provider's, the CSI shim's) can use it:
//
//	var logs = logcheck.New()
//	func TestMain(m *testing.M) { os.Exit(logs.Main(m)) }
//	... slog.New(slog.NewJSONHandler(logs.Tee(t), nil)) ...
//	logs.Secret("s3cr3t-value")
package logcheck

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// MinSecretLen is the shortest value Secret accepts: shorter values would
// match ordinary words and make the check meaningless.
const MinSecretLen = 8

// Recorder is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	secrets map[string]bool
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{secrets: map[string]bool{}} }

// Write captures p.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		r.buf.WriteByte('\n')
	}
	r.writes++
	return len(p), nil
}

// Secret registers values that must never be captured. It panics on a
// value shorter than MinSecretLen, which would make the check unsound.
func (r *Recorder) Secret(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		if len(v) < MinSecretLen {
			panic(fmt.Sprintf("logcheck: secret values must be at least %d bytes long to be checked reliably", MinSecretLen))
		}
		r.secrets[v] = true
	}
}

// NewSecret returns a fresh random value, prefix followed by 16 hex
// digits, already registered as a secret.
func (r *Recorder) NewSecret(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	v := prefix + "-" + hex.EncodeToString(b)
	r.Secret(v)
	return v
}

// Tee returns a writer that captures and also logs to t, line by line, so
// a failing test shows its logs.
func (r *Recorder) Tee(t testing.TB) io.Writer {
	return io.MultiWriter(r, testWriter{t})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(l)
	}
	return len(p), nil
}

// Leak is a captured line that holds a secret value; Line has every
// registered value redacted so the report does not leak it again.
type Leak struct {
	Encoding string
	Line     string
}

// Leaks returns the captured lines holding a registered value in plain
// text, as a JSON or Go string literal, or in base64 or hex.
func (r *Recorder) Leaks() []Leak {
	r.mu.Lock()
	defer r.mu.Unlock()
	type form struct{ enc, s string }
	var forms []form
	var secrets []string
	for s := range r.secrets {
		secrets = append(secrets, s)
		js, _ := json.Marshal(s)
		forms = append(forms,
			form{"plain", s},
			form{"json", strings.Trim(string(js), `"`)},
			form{"quoted", strings.Trim(fmt.Sprintf("%q", s), `"`)},
			form{"base64", base64.StdEncoding.EncodeToString([]byte(s))},
			form{"base64url", base64.RawURLEncoding.EncodeToString([]byte(s))},
			form{"hex", hex.EncodeToString([]byte(s))},
		)
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	var out []Leak
	for _, line := range strings.Split(r.buf.String(), "\n") {
		for _, f := range forms {
			if strings.Contains(line, f.s) {
				red := line
				for _, s := range secrets {
					red = strings.ReplaceAll(red, s, "<REDACTED>")
				}
				for _, g := range forms {
					red = strings.ReplaceAll(red, g.s, "<REDACTED:"+g.enc+">")
				}
				out = append(out, Leak{Encoding: f.enc, Line: red})
				break
			}
		}
	}
	return out
}

// Stats reports how much was captured and checked.
func (r *Recorder) Stats() (writes, bytes, secrets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes, r.buf.Len(), len(r.secrets)
}

// Text returns everything captured so far, for tests that assert what was
// logged (so that a clean result cannot come from logging nothing).
func (r *Recorder) Text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// Check fails t for every leak.
func (r *Recorder) Check(t testing.TB) {
	t.Helper()
	for _, l := range r.Leaks() {
		t.Errorf("secret value (%s) in captured output: %s", l.Encoding, l.Line)
	}
}

// Main runs the suite and then checks everything captured during it. The
// check is only meaningful when the suite both logged and registered
// values, so a run that did neither (and ran tests) fails too, unless it
// was -short or filtered by -run.
func (r *Recorder) Main(m *testing.M) int {
	code := m.Run()
	leaks := r.Leaks()
	writes, n, secrets := r.Stats()
	for _, l := range leaks {
		fmt.Fprintf(os.Stderr, "logcheck: secret value (%s) in captured output: %s\n", l.Encoding, l.Line)
	}
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "logcheck: FAIL: %d captured lines hold secret values\n", len(leaks))
		return 1
	}
	if testing.Verbose() || code != 0 {
		fmt.Fprintf(os.Stderr, "logcheck: %d writes (%d bytes) checked against %d secret values: none found\n", writes, n, secrets)
	}
	return code
}
