package child

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopEndsTheChildAndItsGroup(t *testing.T) {
	// The shell starts a grandchild in the same group; Stop must end both.
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	var exitErr error
	exitRan := make(chan struct{})
	p, err := Start("sleeper", cmd, func(err error) { exitErr = err; close(exitRan) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(syscall.SIGKILL, time.Second) })
	if done, _ := p.Exited(); done {
		t.Fatal("Exited before the child ended")
	}
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Fatalf("process group %d (%v), want its own (%d)", pgid, err, p.Pid())
	}
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	done, err := p.Exited()
	if !done || err == nil {
		t.Fatalf("after Stop: exited %v, err %v; want exited by a signal", done, err)
	}
	select {
	case <-exitRan:
	default:
		t.Fatal("onExit did not run before Exited reported the end")
	}
	if exitErr != err { //nolint:errorlint // the very value Wait returned
		t.Errorf("onExit got %v, Exited %v", exitErr, err)
	}
	// The grandchild, killed by the same signal, is reaped by init (or a
	// subreaper), not by us; until then it is a zombie, which counts as
	// stopped.
	deadline := time.Now().Add(10 * time.Second)
	for live := liveMembers(t, p.Pid()); len(live) > 0; live = liveMembers(t, p.Pid()) {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of group %d still run after 10s", live, p.Pid())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Stop of an ended child: %v", err)
	}
}

func TestStopKillsAChildThatIgnoresTheSignal(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; echo ready; sleep 60 & wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start("stubborn", cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(syscall.SIGKILL, time.Second) })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil { // the trap is set
		t.Fatal(err)
	}
	err = p.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stubborn (pid") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop = %v, want it to say the child was killed", err)
	}
	if done, _ := p.Exited(); !done {
		t.Error("not exited after Stop")
	}
}

func TestStartReportsAMissingBinary(t *testing.T) {
	_, err := Start("ghost", exec.Command("/nonexistent/ghost"), nil)
	if err == nil || !strings.Contains(err.Error(), "start ghost") {
		t.Fatalf("Start = %v", err)
	}
}

func TestExitStatus(t *testing.T) {
	p, err := Start("ok", exec.Command("/bin/true"), nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if done, err := p.Exited(); done {
			if err != nil {
				t.Errorf("exit status 0 reported as %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("/bin/true did not exit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.log")
	if err := os.WriteFile(short, []byte("a\nb\nc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := LogTail(short, 5); got != "a\nb\nc" {
		t.Errorf("whole log: %q", got)
	}
	if got := LogTail(short, 2); got != "... (earlier lines in "+short+")\nb\nc" {
		t.Errorf("last two: %q", got)
	}
	long := filepath.Join(dir, "long.log")
	var b strings.Builder
	for i := 0; b.Len() < 3*tailWindow; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(long, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	all := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := "... (earlier lines in " + long + ")\n" + strings.Join(all[len(all)-3:], "\n")
	if got := LogTail(long, 3); got != want {
		t.Errorf("long log: %q, want %q", got, want)
	}
	if got := LogTail(filepath.Join(dir, "none.log"), 3); !strings.Contains(got, "cannot read") {
		t.Errorf("missing log: %q", got)
	}
}

// liveMembers returns the processes of group pgid that are not zombies.
func liveMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}
