// Package mountinfo reads the kernel's mount table in the format of
// /proc/<pid>/mountinfo (proc(5)): the node shim checks its own mounts with
// it, and the tests and the end-to-end harness find and clean up theirs.
package mountinfo

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Self is the mount table of the calling process.
const Self = "/proc/self/mountinfo"

// Mount is one line of a mountinfo file.
type Mount struct {
	// Point is the mount point (field 5), unescaped.
	Point string
	// FSType is the file system type (the first field after "-").
	FSType string
}

// Scan calls fn for each mount of the mountinfo file in order until fn
// returns false.
func Scan(file string, fn func(Mount) bool) error {
	f, err := os.Open(file) //nolint:gosec // a mount table path chosen by the caller
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := Mount{Point: Unescape(fields[4])}
		for i := 5; i+1 < len(fields); i++ {
			if fields[i] == "-" {
				m.FSType = fields[i+1]
				break
			}
		}
		if !fn(m) {
			return nil
		}
	}
	return sc.Err()
}

// IsMountPoint reports whether path is the mount point of a mount in file.
func IsMountPoint(file, path string) (bool, error) {
	found := false
	err := Scan(file, func(m Mount) bool {
		found = m.Point == path
		return !found
	})
	return found, err
}

// Under returns the mount points of file that are dir or below it, in
// the table's order.
func Under(file, dir string) ([]string, error) {
	var out []string
	err := Scan(file, func(m Mount) bool {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
		return true
	})
	return out, err
}

// Unescape decodes the \NNN octal escapes the kernel uses for spaces,
// tabs, newlines and backslashes in mountinfo paths.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
