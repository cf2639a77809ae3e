package atomicdir

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tsName matches the timestamped directories kubelet creates:
// "..YYYY_MM_DD_HH_MM_SS.<decimal digits>".
var tsName = regexp.MustCompile(`^\.\.(\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})\.\d+$`)

// entry describes one name directly in the published directory.
type entry struct {
	Type   string // "link", "dir", "file"
	Target string // for links
}

// listing returns every direct entry of dir.
func listing(t *testing.T, dir string) map[string]entry {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			out[de.Name()] = entry{Type: "link", Target: target}
		case de.IsDir():
			out[de.Name()] = entry{Type: "dir"}
		default:
			out[de.Name()] = entry{Type: "file"}
		}
	}
	return out
}

// published reads every file through the user-visible names, following
// symlinks, as an application would.
func published(t *testing.T, dir string) map[string]File {
	t.Helper()
	out := map[string]File{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), "..") {
			continue
		}
		if err := walkInto(dir, filepath.Join(dir, de.Name()), out); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func walkInto(dir, p string, out map[string]File) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return addFile(dir, p, st, out)
	}
	sub, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, s := range sub {
		if err := walkInto(dir, filepath.Join(p, s.Name()), out); err != nil {
			return err
		}
	}
	return nil
}

func addFile(dir, p string, st fs.FileInfo, out map[string]File) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(dir, p)
	out[filepath.ToSlash(rel)] = File{Path: filepath.ToSlash(rel), Mode: st.Mode().Perm(), Data: data}
	return nil
}

// want turns files into the map published returns, applying DefaultMode.
func want(files ...File) map[string]File {
	out := map[string]File{}
	for _, f := range files {
		if f.Mode == 0 {
			f.Mode = DefaultMode
		}
		out[f.Path] = f
	}
	return out
}

func equalSets(a, b map[string]File) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.Mode != y.Mode || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

func describe(m map[string]File) string {
	var parts []string
	for k, f := range m {
		parts = append(parts, k+"("+f.Mode.String()+")="+string(f.Data))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func mustWrite(t *testing.T, dir string, files ...File) Result {
	t.Helper()
	res, err := Write(dir, files)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return res
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	before := time.Now().UTC().Truncate(time.Second)
	res := mustWrite(t, dir,
		File{Path: "db-password", Data: []byte("one")},
		File{Path: "certs/tls.crt", Mode: 0o600, Data: []byte("crt")},
		File{Path: "certs/nested/ca.crt", Data: []byte("ca")},
	)
	after := time.Now().UTC()

	if !res.Swapped {
		t.Fatal("first write did not swap")
	}
	if got, wantChanged := strings.Join(res.Changed, ","), "certs,db-password"; got != wantChanged {
		t.Errorf("Changed = %s, want %s", got, wantChanged)
	}
	entries := listing(t, dir)
	data, ok := entries[DataDir]
	if !ok || data.Type != "link" {
		t.Fatalf("%s is not a symlink: %+v", DataDir, entries)
	}
	m := tsName.FindStringSubmatch(data.Target)
	if m == nil {
		t.Fatalf("%s points at %q, want ..YYYY_MM_DD_HH_MM_SS.<digits>", DataDir, data.Target)
	}
	stamp, err := time.Parse("2006_01_02_15_04_05", m[1])
	if err != nil {
		t.Fatal(err)
	}
	if stamp.Before(before) || stamp.After(after) {
		t.Errorf("timestamp %s is not the UTC write time (between %s and %s)", stamp, before, after)
	}
	wantEntries := map[string]entry{
		DataDir:       {Type: "link", Target: data.Target},
		data.Target:   {Type: "dir"},
		"db-password": {Type: "link", Target: "..data/db-password"},
		"certs":       {Type: "link", Target: "..data/certs"},
	}
	if len(entries) != len(wantEntries) {
		t.Errorf("entries = %+v, want %+v", entries, wantEntries)
	}
	for name, w := range wantEntries {
		if entries[name] != w {
			t.Errorf("entry %s = %+v, want %+v", name, entries[name], w)
		}
	}
	st, err := os.Stat(filepath.Join(dir, data.Target))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("timestamped directory mode %v, want 0755", st.Mode().Perm())
	}
	// Nested directories are real directories inside the timestamped one,
	// reached through the top-level link only.
	for _, d := range []string{"certs", "certs/nested"} {
		st, err := os.Lstat(filepath.Join(dir, data.Target, d))
		if err != nil || !st.IsDir() {
			t.Errorf("%s inside the timestamped directory: %v, %v", d, st, err)
		}
	}
}

func TestWriteContentAndModes(t *testing.T) {
	type step struct {
		files []File
		// changed and removed are the expected Result lists.
		changed, removed []string
		swapped          bool
	}
	tests := map[string]struct {
		steps []step
	}{
		"default and explicit modes": {steps: []step{{
			files: []File{
				{Path: "a", Data: []byte("A")},
				{Path: "b", Mode: 0o400, Data: []byte("B")},
				{Path: "c", Mode: 0o640, Data: []byte("C")},
				{Path: "d", Mode: 0o777, Data: []byte("D")},
			},
			changed: []string{"a", "b", "c", "d"}, swapped: true,
		}}},
		"nested aliases": {steps: []step{{
			files: []File{
				{Path: "dir/sub/x", Mode: 0o600, Data: []byte("x")},
				{Path: "dir/y", Data: []byte("y")},
				{Path: "top", Data: []byte("t")},
			},
			changed: []string{"dir", "top"}, swapped: true,
		}}},
		"empty file": {steps: []step{{
			files:   []File{{Path: "empty", Data: nil}},
			changed: []string{"empty"}, swapped: true,
		}}},
		"unchanged is a no-op": {steps: []step{
			{files: []File{{Path: "a", Data: []byte("A")}, {Path: "n/b", Data: []byte("B")}}, changed: []string{"a", "n"}, swapped: true},
			{files: []File{{Path: "n/b", Data: []byte("B")}, {Path: "a", Data: []byte("A")}}},
		}},
		"content change": {steps: []step{
			{files: []File{{Path: "a", Data: []byte("A1")}, {Path: "b", Data: []byte("B")}}, changed: []string{"a", "b"}, swapped: true},
			{files: []File{{Path: "a", Data: []byte("A2")}, {Path: "b", Data: []byte("B")}}, changed: []string{"a"}, swapped: true},
		}},
		"mode-only change is applied": {steps: []step{
			{files: []File{{Path: "a", Data: []byte("A")}}, changed: []string{"a"}, swapped: true},
			{files: []File{{Path: "a", Mode: 0o600, Data: []byte("A")}}, changed: []string{"a"}, swapped: true},
		}},
		"vanished objects are removed": {steps: []step{
			{files: []File{{Path: "a", Data: []byte("A")}, {Path: "gone", Data: []byte("G")}, {Path: "d/x", Data: []byte("X")}}, changed: []string{"a", "d", "gone"}, swapped: true},
			{files: []File{{Path: "a", Data: []byte("A")}}, removed: []string{"d", "gone"}, swapped: true},
		}},
		"file vanished from a surviving directory": {steps: []step{
			{files: []File{{Path: "d/x", Data: []byte("X")}, {Path: "d/y", Data: []byte("Y")}}, changed: []string{"d"}, swapped: true},
			{files: []File{{Path: "d/x", Data: []byte("X")}}, changed: []string{"d"}, swapped: true},
		}},
		"file becomes directory": {steps: []step{
			{files: []File{{Path: "a", Data: []byte("A")}}, changed: []string{"a"}, swapped: true},
			{files: []File{{Path: "a/inner", Data: []byte("I")}}, changed: []string{"a"}, swapped: true},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for i, s := range tc.steps {
				res := mustWrite(t, dir, s.files...)
				if res.Swapped != s.swapped {
					t.Errorf("step %d: Swapped = %v, want %v", i, res.Swapped, s.swapped)
				}
				if strings.Join(res.Changed, ",") != strings.Join(s.changed, ",") {
					t.Errorf("step %d: Changed = %q, want %q", i, res.Changed, s.changed)
				}
				if strings.Join(res.Removed, ",") != strings.Join(s.removed, ",") {
					t.Errorf("step %d: Removed = %q, want %q", i, res.Removed, s.removed)
				}
				got := published(t, dir)
				if w := want(s.files...); !equalSets(got, w) {
					t.Errorf("step %d: published %s\nwant %s", i, describe(got), describe(w))
				}
				// Read agrees with what applications see.
				read, err := Read(dir)
				if err != nil {
					t.Fatal(err)
				}
				rm := map[string]File{}
				for _, f := range read {
					rm[f.Path] = f
				}
				if !equalSets(rm, got) {
					t.Errorf("step %d: Read %s, applications see %s", i, describe(rm), describe(got))
				}
				// Exactly one timestamped directory, no temporaries.
				var ts []string
				for n, e := range listing(t, dir) {
					switch {
					case tsName.MatchString(n):
						ts = append(ts, n)
					case n == DataDir:
					case strings.HasPrefix(n, ".."):
						t.Errorf("step %d: leftover %s", i, n)
					case e.Type != "link" || e.Target != "..data/"+n:
						t.Errorf("step %d: user-visible %s is %+v", i, n, e)
					}
				}
				if len(ts) != 1 {
					t.Errorf("step %d: timestamped directories %q, want exactly one", i, ts)
				}
			}
		})
	}
}

func TestWriteUnchangedKeepsGeneration(t *testing.T) {
	dir := t.TempDir()
	files := []File{{Path: "a", Data: []byte("A")}, {Path: "b/c", Data: []byte("C")}}
	mustWrite(t, dir, files...)
	gen1, _ := os.Readlink(filepath.Join(dir, DataDir))
	st1, _ := os.Lstat(filepath.Join(dir, "a"))
	time.Sleep(20 * time.Millisecond)
	res := mustWrite(t, dir, files...)
	gen2, _ := os.Readlink(filepath.Join(dir, DataDir))
	st2, _ := os.Lstat(filepath.Join(dir, "a"))
	if res.Swapped || gen1 != gen2 {
		t.Errorf("unchanged write swapped: %v, %s -> %s", res.Swapped, gen1, gen2)
	}
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Errorf("unchanged write touched a: %s -> %s", st1.ModTime(), st2.ModTime())
	}
}

func TestWriteRepairsMissingLink(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, File{Path: "a", Data: []byte("A")})
	if err := os.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	res := mustWrite(t, dir, File{Path: "a", Data: []byte("A")})
	if res.Swapped {
		t.Error("repair swapped")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "A" {
		t.Errorf("a after repair: %q, %v", b, err)
	}
}

func TestWriteTouchesChangedNamesOnly(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, File{Path: "a", Data: []byte("A")}, File{Path: "b", Data: []byte("B")})
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{"a", "b"} {
		if err := touch(dir, n, old); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, dir, File{Path: "a", Data: []byte("A2")}, File{Path: "b", Data: []byte("B")})
	sa, _ := os.Lstat(filepath.Join(dir, "a"))
	sb, _ := os.Lstat(filepath.Join(dir, "b"))
	if !sa.ModTime().After(old.Add(time.Minute)) {
		t.Errorf("changed name a was not touched: %s", sa.ModTime())
	}
	if sb.ModTime().After(old.Add(time.Minute)) {
		t.Errorf("unchanged name b was touched: %s", sb.ModTime())
	}
}

// TestNestedDotDotElement: an element starting with ".." below the top
// level is an ordinary name (the upstream driver's writer allows it too); it
// is written inside the set, survives a rewrite and never touches the
// writer's own top-level entries.
func TestNestedDotDotElement(t *testing.T) {
	for _, p := range []string{"dir/..hidden", "a/b/..data", "a/..2020_01_01_00_00_00.1"} {
		if err := ValidatePath(p); err != nil {
			t.Fatalf("ValidatePath(%q): %v", p, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "vol")
	one := []File{{Path: "dir/..hidden", Mode: 0o600, Data: []byte("1")}, {Path: "dir/..data", Data: []byte("d")}}
	mustWrite(t, dir, one...)
	if got := published(t, dir); !equalSets(got, want(one...)) {
		t.Fatalf("published %s", describe(got))
	}
	two := []File{{Path: "dir/..hidden", Mode: 0o600, Data: []byte("2")}}
	mustWrite(t, dir, two...)
	if got := published(t, dir); !equalSets(got, want(two...)) {
		t.Fatalf("after rewrite published %s", describe(got))
	}
}

func TestPathTraversalRejected(t *testing.T) {
	tests := map[string]string{
		"parent":              "../escape",
		"inner parent":        "a/../../escape",
		"parent at end":       "a/..",
		"absolute":            "/etc/escape",
		"dot":                 "./a",
		"dot element":         "a/./b",
		"empty element":       "a//b",
		"trailing slash":      "a/",
		"empty":               "",
		"reserved data":       "..data/x",
		"reserved prefix":     "..hidden",
		"backslash":           `a\..\..\escape`,
		"NUL":                 "a\x00b",
		"element too long":    strings.Repeat("x", 256),
		"path too long":       strings.Repeat("abcdefgh/", 460) + "x",
		"timestamped overlap": "..2020_01_01_00_00_00.1/x",
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			if err := ValidatePath(p); err == nil {
				t.Fatalf("ValidatePath(%q) accepted", p)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "vol")
			mustWrite(t, dir, File{Path: "keep", Data: []byte("K")})
			before := listing(t, dir)
			_, err := Write(dir, []File{{Path: "ok", Data: []byte("O")}, {Path: p, Data: []byte("evil")}})
			if err == nil {
				t.Fatalf("Write accepted %q", p)
			}
			if got := listing(t, dir); len(got) != len(before) {
				t.Errorf("rejected write changed the directory: %+v -> %+v", before, got)
			}
			if got := listing(t, parent); len(got) != 1 {
				t.Errorf("something was written next to the volume: %+v", got)
			}
			if got := published(t, dir); !equalSets(got, want(File{Path: "keep", Data: []byte("K")})) {
				t.Errorf("published set changed: %s", describe(got))
			}
		})
	}
	valid := []string{"a", "a/b/c", "a.b", ".hidden", "a/.b", "a..b", "x-y_z", strings.Repeat("x", 255)}
	for _, p := range valid {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want accepted", p, err)
		}
	}
}

func TestValidatePayload(t *testing.T) {
	tests := map[string]struct {
		files []File
		ok    bool
	}{
		"distinct":              {files: []File{{Path: "a"}, {Path: "b/c"}}, ok: true},
		"duplicate":             {files: []File{{Path: "a"}, {Path: "a"}}},
		"file is also dir":      {files: []File{{Path: "a"}, {Path: "a/b"}}},
		"deep file is also dir": {files: []File{{Path: "a/b"}, {Path: "a/b/c/d"}}},
		"setuid bit":            {files: []File{{Path: "a", Mode: 0o4755}}},
		"directory mode bit":    {files: []File{{Path: "a", Mode: fs.ModeDir | 0o755}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidatePayload(tc.files)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidatePayload = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestFailedWriteKeepsPreviousSet injects real failures from the kernel in
// the middle of a write and checks that what applications see is the
// previous set, byte for byte, and that nothing of the failed attempt is
// left behind.
func TestFailedWriteKeepsPreviousSet(t *testing.T) {
	prev := []File{
		{Path: "a", Data: []byte("A1")},
		{Path: "d/x", Mode: 0o600, Data: []byte("X1")},
	}
	next := []File{
		{Path: "a", Data: []byte("A2")},
		{Path: "d/x", Mode: 0o600, Data: []byte("X2")},
		{Path: "z", Data: bytes.Repeat([]byte("z"), 1<<20)}, // written last, too big
	}
	tests := map[string]struct {
		// inject arranges for the next write to fail and returns an undo.
		inject func(t *testing.T, dir string) func()
		// wantErr is part of the expected error message.
		wantErr string
		// unprivileged makes the failing write run without root's
		// permission override: as root, in a child process as uid 65534
		// (writeUnprivileged).
		unprivileged bool
	}{
		"file larger than RLIMIT_FSIZE": {wantErr: "write z: ", inject: func(t *testing.T, dir string) func() {
			// The kernel refuses to grow a file past the limit (EFBIG),
			// for root too; the Go runtime ignores SIGXFSZ.
			var old syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
			lim := old
			lim.Cur = 64 << 10
			if lim.Cur > old.Max {
				lim.Cur = old.Max // a lower hard limit fails the write all the same
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
				t.Fatalf("lower RLIMIT_FSIZE to %d: %v", lim.Cur, err)
			}
			return func() {
				if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
					t.Fatal(err)
				}
			}
		}},
		"swap link cannot be created": {wantErr: "create ..data_tmp", inject: func(t *testing.T, dir string) func() {
			// A non-empty directory where the temporary link must go.
			if err := os.MkdirAll(filepath.Join(dir, tmpDataDir, "blocker"), 0o755); err != nil {
				t.Fatal(err)
			}
			return func() { _ = os.RemoveAll(filepath.Join(dir, tmpDataDir)) }
		}},
		"read-only volume directory": {wantErr: "permission denied", unprivileged: true, inject: func(t *testing.T, dir string) func() {
			if err := os.Chmod(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			return func() { _ = os.Chmod(dir, 0o755) }
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mustWrite(t, dir, prev...)
			gen, _ := os.Readlink(filepath.Join(dir, DataDir))
			before := listing(t, dir)

			write := Write
			if tc.unprivileged && os.Geteuid() == 0 {
				write = func(dir string, files []File) (Result, error) { return writeUnprivileged(t, dir, files) }
			}
			undo := tc.inject(t, dir)
			res, err := write(dir, next)
			undo()
			if err == nil {
				t.Fatal("Write succeeded despite the injected failure")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if res.Swapped {
				t.Error("failed write reports a swap")
			}
			if got := published(t, dir); !equalSets(got, want(prev...)) {
				t.Errorf("after failed write applications see %s, want %s", describe(got), describe(want(prev...)))
			}
			if g, _ := os.Readlink(filepath.Join(dir, DataDir)); g != gen {
				t.Errorf("%s moved from %s to %s", DataDir, gen, g)
			}
			after := listing(t, dir)
			for n := range after {
				if _, ok := before[n]; !ok && n != tmpDataDir {
					t.Errorf("failed write left %s behind", n)
				}
			}
			// The next write succeeds and publishes the new set.
			if _, err := Write(dir, next); err != nil {
				t.Fatalf("write after the failure: %v", err)
			}
			if got := published(t, dir); !equalSets(got, want(next...)) {
				t.Errorf("after recovery: %s", describe(got))
			}
		})
	}
}

func TestWriteIntoFileFails(t *testing.T) {
	parent := t.TempDir()
	target := filepath.Join(parent, "file")
	if err := os.WriteFile(target, []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Write(target, []File{{Path: "a", Data: []byte("A")}})
	if err == nil || !errors.Is(err, syscall.ENOTDIR) && !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Write into a regular file: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "not a dir" {
		t.Errorf("regular file changed: %q", b)
	}
}

func TestWriteRemovesAbandonedSets(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, File{Path: "a", Data: []byte("A1")})
	// What a write interrupted before its swap leaves behind.
	abandoned := filepath.Join(dir, "..2020_01_02_03_04_05.12345")
	if err := os.MkdirAll(filepath.Join(abandoned, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not ours: must stay.
	foreign := filepath.Join(dir, "..not-a-set")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, dir, File{Path: "a", Data: []byte("A2")})
	if _, err := os.Stat(abandoned); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned set still there: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("unrelated directory removed: %v", err)
	}
	for _, n := range []string{"..2020_01_02_03_04_05.12345", "..2026_10_01_00_00_00.7"} {
		if !isTimestamped(n) {
			t.Errorf("isTimestamped(%q) = false", n)
		}
	}
	for _, n := range []string{"..data", "..data_tmp", "..2020_01_02_03_04_05.", "..2020_01_02_03_04_05.1x", "2020_01_02_03_04_05.1"} {
		if isTimestamped(n) {
			t.Errorf("isTimestamped(%q) = true", n)
		}
	}
}

// TestWriteExactModeZero: a file marked ExactMode with mode 0 is written
// 0000 (a provider plugin's mode 0, as the upstream driver writes it);
// without the mark zero keeps meaning DefaultMode. Going from one to the
// other is a change.
func TestWriteExactModeZero(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, File{Path: "plugin", ExactMode: true, Data: []byte("P")}, File{Path: "builtin", Data: []byte("B")})
	for name, want := range map[string]fs.FileMode{"plugin": 0, "builtin": DefaultMode} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}
	res := mustWrite(t, dir, File{Path: "plugin", Data: []byte("P")}, File{Path: "builtin", Data: []byte("B")})
	if !res.Swapped || !reflect.DeepEqual(res.Changed, []string{"plugin"}) {
		t.Errorf("0000 to default: swapped %v changed %q, want [plugin]", res.Swapped, res.Changed)
	}
}
