package atomicdir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// concurrentPaths are the files of every generation; nested ones included so
// that readers cross a top-level directory link too.
var concurrentPaths = []string{
	"db-password", "api-key", "tls.crt", "tls.key", "config.json",
	"nested/a", "nested/b", "nested/deep/c", "other/d", "e",
}

const genBody = 8 << 10

// genContent is the content of path in generation g: a header and a trailer
// naming the generation and path around a body derived from both, so a torn
// or spliced read cannot pass check.
func genContent(path string, g int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "gen=%08d path=%s\n", g, path)
	fill := byte('a' + g%26)
	b.Write(bytes.Repeat([]byte{fill}, genBody+len(path)))
	fmt.Fprintf(&b, "\nend=%08d\n", g)
	return b.Bytes()
}

// checkContent returns the generation of data read from path, or an error
// when the data is not exactly one generation's content.
func checkContent(path string, data []byte) (int, error) {
	var g int
	if _, err := fmt.Sscanf(string(data), "gen=%08d", &g); err != nil {
		return 0, fmt.Errorf("%s: no header in %d bytes", path, len(data))
	}
	if !bytes.Equal(data, genContent(path, g)) {
		return 0, fmt.Errorf("%s: torn content (%d bytes, header generation %d)", path, len(data), g)
	}
	return g, nil
}

func genFiles(g int) []File {
	files := make([]File, len(concurrentPaths))
	for i, p := range concurrentPaths {
		files[i] = File{Path: p, Mode: 0o640, Data: genContent(p, g)}
	}
	return files
}

// TestConcurrentReadersNeverSeeMixedSets rotates 1,000 times while readers
// read continuously. A reader that resolves ..data once must see all files
// of one generation (or find the generation retired, and retry); a reader
// that opens the user-visible names must always read one generation's
// complete content, never going backwards.
func TestConcurrentReadersNeverSeeMixedSets(t *testing.T) {
	const rotations = 1000
	dir := memDir(t)
	mustWrite(t, dir, genFiles(0)...)

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg                         sync.WaitGroup
		failures                   atomic.Int64
		setReads, fileReads        atomic.Int64
		retired, vanished          atomic.Int64
		distinctSets, distinctFile sync.Map
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}

	// Readers that resolve ..data once per set, like an application that
	// reads "..data" and then its files (kubelet's documented contract).
	{
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for ctx.Err() == nil {
				ts, err := os.Readlink(filepath.Join(dir, DataDir))
				if err != nil {
					fail("readlink %s: %v", DataDir, err)
					return
				}
				gen := -1
				ok := true
				for _, p := range concurrentPaths {
					data, err := os.ReadFile(filepath.Join(dir, ts, p))
					if errors.Is(err, fs.ErrNotExist) {
						// The generation was retired while being read; that
						// is only allowed once ..data points elsewhere.
						if now, _ := os.Readlink(filepath.Join(dir, DataDir)); now == ts {
							fail("%s vanished from the published generation %s", p, ts)
						}
						retired.Add(1)
						ok = false
						break
					}
					if err != nil {
						fail("read %s/%s: %v", ts, p, err)
						return
					}
					g, err := checkContent(p, data)
					if err != nil {
						fail("%v", err)
						return
					}
					if gen == -1 {
						gen = g
					} else if g != gen {
						fail("mixed set in %s: %s is generation %d, earlier files %d", ts, p, g, gen)
						return
					}
				}
				if ok {
					if gen < last {
						fail("set went back from generation %d to %d", last, gen)
					}
					last = gen
					setReads.Add(1)
					distinctSets.Store(gen, true)
				}
			}
		}()
	}
	// Readers that open the user-visible names, file by file.
	{
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]int{}
			for ctx.Err() == nil {
				for _, p := range concurrentPaths {
					data, err := os.ReadFile(filepath.Join(dir, p))
					if errors.Is(err, fs.ErrNotExist) {
						// The kernel resolved ..data to a generation removed
						// before the last lookup; the next open succeeds.
						vanished.Add(1)
						continue
					}
					if err != nil {
						fail("read %s: %v", p, err)
						return
					}
					g, err := checkContent(p, data)
					if err != nil {
						fail("%v", err)
						return
					}
					if g < last[p] {
						fail("%s went back from generation %d to %d", p, last[p], g)
					}
					last[p] = g
					fileReads.Add(1)
					distinctFile.Store(g, true)
				}
			}
		}()
	}

	stop := func() { cancel(); wg.Wait() }
	defer stop()
	for g := 1; g <= rotations; g++ {
		res, err := Write(dir, genFiles(g))
		if err != nil {
			t.Fatalf("rotation %d: %v", g, err)
		}
		if !res.Swapped || len(res.Changed) != 8 {
			t.Fatalf("rotation %d: %+v, want a swap changing the 8 top-level names", g, res)
		}
	}
	stop()

	count := func(m *sync.Map) (n int) {
		m.Range(func(any, any) bool { n++; return true })
		return n
	}
	t.Logf("%d rotations; %d consistent set reads over %d generations (%d retired mid-read, retried); %d file reads over %d generations (%d transient ENOENT)",
		rotations, setReads.Load(), count(&distinctSets), retired.Load(), fileReads.Load(), count(&distinctFile), vanished.Load())
	// The readers must have overlapped the rotations for the test to mean
	// anything.
	if count(&distinctSets) < 20 || count(&distinctFile) < 20 {
		t.Errorf("readers saw too few generations (%d sets, %d files) to exercise concurrency", count(&distinctSets), count(&distinctFile))
	}
	if got := published(t, dir); !equalSets(got, want(genFiles(rotations)...)) {
		t.Errorf("final set is not generation %d", rotations)
	}
	var ts []string
	for n := range listing(t, dir) {
		if tsName.MatchString(n) {
			ts = append(ts, n)
		}
	}
	if len(ts) != 1 {
		t.Errorf("after %d rotations: timestamped directories %q", rotations, ts)
	}
}

// memDir returns a directory on tmpfs when the machine has one at /dev/shm,
// like the agent's emptyDir with medium Memory; otherwise a temporary one.
func memDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "atomicdir-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
