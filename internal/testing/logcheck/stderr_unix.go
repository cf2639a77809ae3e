//go:build linux || darwin

package logcheck

import (
	"bytes"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stderrMu makes captures of the process's standard error exclusive.
var stderrMu sync.Mutex

// CaptureStderr captures, until t ends, everything the process writes to
// its standard error (file descriptor 2), whoever writes it: libraries
// that log there on their own, such as cloud SDKs whose debug logging an
// environment variable turns on, are checked like the component's own
// logger. The output still reaches the original standard error. Lines are
// recorded whole, so a value is never split across two records.
//
// Only one capture runs at a time per process; tests using it must not
// run in parallel with each other. Processes started during the capture
// with the test's standard error inherit the capture; they should be
// started before it.
func (r *Recorder) CaptureStderr(t testing.TB) {
	t.Helper()
	if !stderrMu.TryLock() {
		t.Fatal("logcheck: standard error is already being captured")
	}
	saved, err := unix.Dup(2)
	if err != nil {
		stderrMu.Unlock()
		t.Fatalf("logcheck: dup stderr: %v", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = unix.Close(saved)
		stderrMu.Unlock()
		t.Fatalf("logcheck: pipe: %v", err)
	}
	if err := unix.Dup2(int(pw.Fd()), 2); err != nil {
		_ = pr.Close()
		_ = pw.Close()
		_ = unix.Close(saved)
		stderrMu.Unlock()
		t.Fatalf("logcheck: redirect stderr: %v", err)
	}
	// Descriptor 2 now holds the only write end this process keeps.
	_ = pw.Close()
	orig := os.NewFile(uintptr(saved), "original stderr")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.copyLines(pr, orig)
	}()
	t.Cleanup(func() {
		defer stderrMu.Unlock()
		// Restoring descriptor 2 closes the pipe's write end; the copier
		// then reads to EOF, unless a child process still holds a copy.
		if err := unix.Dup2(saved, 2); err != nil {
			t.Errorf("logcheck: restore stderr: %v", err)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			_ = pr.Close()
			<-done
		}
		_ = pr.Close()
		_ = orig.Close()
	})
}

// copyLines records whole lines read from src and passes everything on
// to dst.
func (r *Recorder) copyLines(src io.Reader, dst io.Writer) {
	var pending []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			_, _ = dst.Write(buf[:n])
			pending = append(pending, buf[:n]...)
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				_, _ = r.Write(pending[:i+1])
				pending = append(pending[:0], pending[i+1:]...)
			}
		}
		if err != nil {
			if len(pending) > 0 {
				_, _ = r.Write(pending)
			}
			return
		}
	}
}
