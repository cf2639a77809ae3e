package agent

import (
	"os"
	"testing"
)

func TestReleaseStartupMemory(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := readOnlyExecutableMappings(exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 {
		t.Fatal("no read-only mapping of the test binary found")
	}
	var size uintptr
	for _, m := range maps {
		if m.end <= m.start {
			t.Errorf("bad mapping %x-%x", m.start, m.end)
		}
		size += m.end - m.start
	}
	before, after, err := releaseStartupMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d read-only mappings (%d KiB); resident %d KiB -> %d KiB", len(maps), size/1024, before, after)
	if before <= 0 || after <= 0 || after >= before {
		t.Errorf("resident set %d KiB -> %d KiB, want it to shrink", before, after)
	}
	// Code and constant data fault back in: the process keeps working.
	if _, err := ParseSignal("SIGHUP"); err != nil {
		t.Fatal(err)
	}
}
