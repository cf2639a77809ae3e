// Package agenttest runs the real agent runtime (agent.Run, as `ssi-agent
// run` does in a pod) inside another package's test, typically a cloud
// provider's against its fake backend, with everything the agent logs, the
// error Run returns and the termination message it writes captured by a
// logcheck.Recorder; and it asserts on what was captured, so that a log
// scan for secret values cannot pass by capturing nothing.
//
// It is imported by tests only.
package agenttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agent"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// Options describe one agent run.
type Options struct {
	// Config is the configuration the webhook would have written; Start
	// sets its log level to debug and its format to JSON.
	Config *agentconfig.Config
	// NewProviders builds the providers with the agent's logger, as
	// ssi-agent's main does.
	NewProviders func(*slog.Logger) provider.Set
	// Pod is the pod the agent runs in (the downward-API variables).
	Pod identity.Pod
	// Logs receives every log line, Run's error and the termination
	// message.
	Logs *logcheck.Recorder
}

// Agent is one agent.Run in the test process.
type Agent struct {
	t       *testing.T
	logs    *logcheck.Recorder
	addr    string
	termLog string
	cancel  context.CancelFunc
	done    chan error

	mu       sync.Mutex
	returned bool
	err      error
}

// Start runs the agent until the test ends or Stop is called. Retries
// after failures are fast (20 ms doubling to 300 ms) so that failure
// paths show up within a test's time.
func Start(t *testing.T, o Options) *Agent {
	t.Helper()
	if o.Config == nil || o.Logs == nil || o.NewProviders == nil {
		t.Fatal("agenttest: Config, Logs and NewProviders are required")
	}
	o.Config.LogLevel, o.Config.LogFormat = "debug", "json"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		t: t, logs: o.Logs, addr: ln.Addr().String(),
		termLog: filepath.Join(t.TempDir(), "termination-log"),
		done:    make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	pod := o.Pod
	opts := agent.Options{
		NewProviders:   o.NewProviders,
		Config:         o.Config,
		Pod:            &pod,
		LogOutput:      o.Logs.Tee(t),
		TerminationLog: a.termLog,
		Listener:       ln,
		RetryBase:      20 * time.Millisecond,
		RetryMax:       300 * time.Millisecond,
	}
	go func() { a.done <- agent.Run(ctx, opts) }()
	t.Cleanup(func() { _ = a.Stop(10 * time.Second) })
	return a
}

// finish records Run's result, once, into the logs as well.
func (a *Agent) finish(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.returned {
		return
	}
	a.returned, a.err = true, err
	if err != nil {
		_, _ = fmt.Fprintf(a.logs, "agenttest: agent.Run returned: %v\n", err)
	}
	if b, rerr := os.ReadFile(a.termLog); rerr == nil {
		_, _ = fmt.Fprintf(a.logs, "agenttest: termination message: %s\n", b)
	}
}

func (a *Agent) result() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.returned, a.err
}

// Stop cancels the agent (what SIGTERM does) and returns Run's result.
func (a *Agent) Stop(within time.Duration) error {
	if ok, err := a.result(); ok {
		return err
	}
	a.cancel()
	select {
	case err := <-a.done:
		a.finish(err)
	case <-time.After(within):
		a.t.Errorf("the agent did not stop within %s of cancellation", within)
	}
	_, err := a.result()
	return err
}

// Wait returns Run's result once Run returns by itself.
func (a *Agent) Wait(within time.Duration) error {
	a.t.Helper()
	if ok, err := a.result(); ok {
		return err
	}
	select {
	case err := <-a.done:
		a.finish(err)
	case <-time.After(within):
		a.t.Fatalf("the agent did not return within %s", within)
	}
	_, err := a.result()
	return err
}

// Returned reports whether Run has returned (and records its result).
func (a *Agent) Returned() bool {
	if ok, _ := a.result(); ok {
		return true
	}
	select {
	case err := <-a.done:
		a.finish(err)
		return true
	default:
		return false
	}
}

// Ready reports whether /readyz answers 200.
func (a *Agent) Ready() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.addr + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TerminationMessage is what the agent wrote for kubelet ("" for none).
func (a *Agent) TerminationMessage() string {
	b, err := os.ReadFile(a.termLog)
	if err != nil {
		return ""
	}
	return string(b)
}

// Eventually polls cond every 20 ms until it holds, failing t after
// within; it stops early, failing, when the agent returned while it was
// expected to keep running.
func (a *Agent) Eventually(within time.Duration, what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if a.Returned() {
			_, err := a.result()
			a.t.Fatalf("the agent returned (%v) while waiting for %s", err, what)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no %s within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopCleanly stops the agent as SIGTERM does and fails t unless Run
// returned nil and left no termination message.
func (a *Agent) StopCleanly() {
	a.t.Helper()
	if err := a.Stop(10 * time.Second); err != nil {
		a.t.Errorf("the sidecar returned %v on SIGTERM", err)
	}
	if msg := a.TerminationMessage(); msg != "" {
		a.t.Errorf("termination message after a clean stop: %q", msg)
	}
}

// failedRotation matches the log line of a rotation that failed for
// reason.
func failedRotation(reason provider.Reason) func(Line) bool {
	return Msg("fetch failed; the files already written stay as they are", "phase", "rotation", "reason", string(reason))
}

// RotationsFail injects a backend fault with fault and waits until two
// more rotations have failed for reason; removing the fault is the
// caller's.
func (a *Agent) RotationsFail(reason provider.Reason, fault func()) {
	a.t.Helper()
	before := Count(a.logs, failedRotation(reason))
	fault()
	a.Eventually(10*time.Second, "failed rotations ("+string(reason)+")", func() bool {
		return Count(a.logs, failedRotation(reason)) >= before+2
	})
}

// RotationsFailWhile turns a backend fault on with set(true), waits until
// two more rotations have failed for reason, and turns it off again.
func (a *Agent) RotationsFailWhile(reason provider.Reason, set func(on bool)) {
	a.t.Helper()
	a.RotationsFail(reason, func() { set(true) })
	set(false)
}

// FailsFirstFetch waits for Run to return an error by itself, as an agent
// whose first fetch fails does, and fails t unless the termination message
// holds each of want while neither it nor Run's error holds any of values.
func (a *Agent) FailsFirstFetch(want []string, values ...string) {
	a.t.Helper()
	runErr := a.Wait(30 * time.Second)
	if runErr == nil {
		a.t.Fatal("the agent's first fetch succeeded")
	}
	msg := a.TerminationMessage()
	a.t.Logf("termination message: %s", msg)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			a.t.Errorf("termination message lacks %q", w)
		}
	}
	NoValue(a.t, "the termination message", msg, values...)
	NoValue(a.t, "Run's error", runErr.Error(), values...)
}

// WaitUnchangedRotation waits for a rotation that found nothing changed.
func (a *Agent) WaitUnchangedRotation() {
	a.t.Helper()
	unchanged := Msg("nothing changed", "phase", "rotation")
	a.Eventually(10*time.Second, "an unchanged rotation", func() bool { return Count(a.logs, unchanged) > 0 })
}

// TokenFile registers the pod's token as a secret of r and writes it where
// the agent reads it, as kubelet projects it; it returns the path.
func TokenFile(t *testing.T, r *logcheck.Recorder, token string) string {
	t.Helper()
	r.Secret(token)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SidecarConfig is the configuration the webhook would write for one
// volume "secrets" at dir, served by a sidecar that rotates every 250 ms
// with the given first-fetch timeout, token and cloud identity.
func SidecarConfig(dir string, firstFetch time.Duration, token agentconfig.Token, cloud identity.Cloud, class agentconfig.Class) *agentconfig.Config {
	return &agentconfig.Config{
		APIVersion:        agentconfig.APIVersion,
		Mode:              agentconfig.ModeSidecar,
		RotationInterval:  agentconfig.Duration{Duration: 250 * time.Millisecond},
		FirstFetchTimeout: agentconfig.Duration{Duration: firstFetch},
		Tokens:            []agentconfig.Token{token},
		Cloud:             cloud,
		Volumes:           []agentconfig.Volume{{Name: "secrets", Path: dir, Class: class}},
	}
}

// FileIs returns a condition that holds when the file has content want.
func FileIs(path, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == want
	}
}

// Line is one JSON log line of the agent.
type Line map[string]any

// Str returns an attribute as a string ("" when absent).
func (l Line) Str(key string) string {
	switch v := l[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Lines returns the JSON log lines captured so far; other captured text
// (a library writing to standard error) is skipped.
func Lines(r *logcheck.Recorder) []Line {
	var out []Line
	for _, s := range strings.Split(r.Text(), "\n") {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		var l Line
		if json.Unmarshal([]byte(s), &l) == nil && l["msg"] != nil {
			out = append(out, l)
		}
	}
	return out
}

// Count returns how many captured lines match.
func Count(r *logcheck.Recorder, match func(Line) bool) int {
	n := 0
	for _, l := range Lines(r) {
		if match(l) {
			n++
		}
	}
	return n
}

// Msg matches lines with message msg whose attributes have the given
// values (compared as strings).
func Msg(msg string, attrs ...string) func(Line) bool {
	return func(l Line) bool {
		if l.Str("msg") != msg {
			return false
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if l.Str(attrs[i]) != attrs[i+1] {
				return false
			}
		}
		return true
	}
}

// Expect is what a run's captured logs must show besides having no
// secret value.
type Expect struct {
	// Class is the SecretProviderClass key, "namespace/name".
	Class string
	// Provider is the provider name.
	Provider string
	// Objects must each appear somewhere in the captured logs (object
	// IDs or file names).
	Objects []string
	// FailureReasons must each appear as the reason of a failed fetch.
	FailureReasons []provider.Reason
	// MinLines is the least number of JSON lines expected.
	MinLines int
}

// CheckLogs fails t when a registered secret value appears anywhere in
// what r captured, or when the capture lacks what a run that fetched,
// rotated a changed value and failed must have logged: the start, the
// first write, a rotation that published changed files, one that found
// nothing changed, and a failed fetch per expected reason, each naming
// the class and provider; and every expected object name.
func CheckLogs(t *testing.T, r *logcheck.Recorder, e Expect) {
	t.Helper()
	for _, l := range r.Leaks() {
		t.Errorf("secret value (%s) in captured output: %s", l.Encoding, l.Line)
	}
	writes, size, secrets := r.Stats()
	lines := Lines(r)
	t.Logf("log scan: %d writes, %d bytes, %d JSON lines checked against %d secret values", writes, size, len(lines), secrets)
	if secrets == 0 {
		t.Error("no secret values were registered: the scan proves nothing")
	}
	if len(lines) < e.MinLines {
		t.Errorf("only %d JSON log lines captured, want at least %d", len(lines), e.MinLines)
	}
	cp := []string{"class", e.Class, "provider", e.Provider}
	want := map[string]func(Line) bool{
		"agent starting": Msg("agent starting"),
		"first write":    Msg("files published", append([]string{"phase", "first"}, cp...)...),
		"ready":          Msg("all volumes written; ready"),
		"a rotation that published changed files":  Msg("files published", append([]string{"phase", "rotation"}, cp...)...),
		"a rotation that found nothing changed":    Msg("nothing changed", append([]string{"phase", "rotation"}, cp...)...),
		"a failed fetch naming class and provider": Msg("fetch failed; the files already written stay as they are", cp...),
	}
	for _, reason := range e.FailureReasons {
		want["a failed fetch with reason "+string(reason)] = Msg("fetch failed; the files already written stay as they are", append([]string{"reason", string(reason)}, cp...)...)
	}
	for what, match := range want {
		if Count(r, match) == 0 {
			t.Errorf("the captured logs lack %s", what)
		}
	}
	text := r.Text()
	for _, o := range e.Objects {
		if !strings.Contains(text, o) {
			t.Errorf("the captured logs never name %q", o)
		}
	}
}

// NoValue fails t when s (an error, a termination message) holds any of
// values, in any of the encodings logcheck looks for.
func NoValue(t *testing.T, what, s string, values ...string) {
	t.Helper()
	r := logcheck.New()
	r.Secret(values...)
	_, _ = io.WriteString(r, s)
	for _, l := range r.Leaks() {
		t.Errorf("%s holds a secret value (%s): %s", what, l.Encoding, l.Line)
	}
}
