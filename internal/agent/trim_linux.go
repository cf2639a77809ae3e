package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupMemory gives back what only start-up needed, once the
// first fetch is done and the agent settles into rotating: the heap that
// package initialisation and the first fetch left free, and the pages of
// its own executable that start-up touched.
//
// A Go binary with every provider SDK compiled in runs the initialisers of
// hundreds of packages, and the kernel maps the executable's pages around
// every one it touches; most of that code never runs again. Advising
// MADV_PAGEOUT (MADV_DONTNEED before Linux 5.4) on the executable's
// read-only mappings drops them from the agent's resident set; pages the
// agent does use again fault back in from the page cache. Mappings that
// hold private, modified pages (relocations of a PIE build) are left
// alone, so no content is lost. It returns the resident set before and
// after, in KiB.
func releaseStartupMemory() (before, after int64, err error) {
	before = residentKiB()
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return before, residentKiB(), err
	}
	maps, err := readOnlyExecutableMappings(exe)
	if err != nil {
		return before, residentKiB(), err
	}
	for _, m := range maps {
		err = madvise(m, unix.MADV_PAGEOUT)
		if errors.Is(err, unix.EINVAL) {
			err = madvise(m, unix.MADV_DONTNEED)
		}
		if err != nil {
			return before, residentKiB(), fmt.Errorf("madvise %x-%x: %w", m.start, m.end, err)
		}
	}
	return before, residentKiB(), nil
}

type mapping struct{ start, end uintptr }

// madvise advises on a mapping of our own, given by address; the raw
// system call avoids turning the address into a Go pointer.
func madvise(m mapping, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}

// readOnlyExecutableMappings lists the mappings of exe that are read-only
// (code and constant data) and hold no private copy of any page.
func readOnlyExecutableMappings(exe string) ([]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var (
		out     []mapping
		cur     mapping
		inExe   bool
		private bool
	)
	flush := func() {
		if inExe && !private {
			out = append(out, cur)
		}
		inExe, private = false, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.HasSuffix(fields[0], ":") {
			// A "Key: value kB" line of the current mapping.
			// Private copies of file pages count as Anonymous (dirty
			// page cache of a freshly written binary does not).
			if inExe && len(fields) >= 2 && fields[0] == "Anonymous:" && fields[1] != "0" {
				private = true
			}
			continue
		}
		// A mapping header: "start-end perms offset dev inode [path]".
		flush()
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok || len(fields) < 6 {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		perms := fields[1]
		cur = mapping{start: uintptr(start), end: uintptr(end)}
		inExe = fields[5] == exe && perms[1] == '-' && perms[3] == 'p'
	}
	flush()
	return out, sc.Err()
}

// residentKiB is VmRSS of this process.
func residentKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
