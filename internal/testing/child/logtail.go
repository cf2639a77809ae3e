package child

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// tailWindow bounds how much of a log LogTail reads (logs of a kubelet or
// an API server grow large).
const tailWindow = 64 << 10

// LogTail returns the last n lines of a child's log file (from its last
// 64 KiB), with a first line saying where the earlier ones are when there
// are more, for failure messages.
func LogTail(path string, n int) string {
	f, err := os.Open(path) //nolint:gosec // a log file the caller names
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer func() { _ = f.Close() }()
	var off int64
	if st, err := f.Stat(); err == nil && st.Size() > tailWindow {
		off = st.Size() - tailWindow
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, tailWindow))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if off > 0 {
		// Drop the line the window starts inside.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n || off > 0 {
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		lines = append([][]byte{[]byte("... (earlier lines in " + path + ")")}, lines...)
	}
	return string(bytes.Join(lines, []byte("\n")))
}
