package child

import (
	"errors"
	"os/exec"
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
	if err := syscall.Kill(-p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the group of %d still has members: %v", p.Pid(), err)
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
