package atomicdir

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFastPathModesUnderUmask: files are created with plain system calls;
// their modes are exact even when the umask would strip bits.
func TestFastPathModesUnderUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	files := []File{{Path: "a", Mode: 0o644, Data: []byte("A")}, {Path: "d/b", Mode: 0o440, Data: []byte("B")}, {Path: "c", Data: []byte("C")}}
	if _, err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{"a": 0o644, "c": DefaultMode, "d/b": 0o440}
	for _, f := range got {
		if want[f.Path] != f.Mode {
			t.Errorf("%s: mode %o, want %o", f.Path, f.Mode, want[f.Path])
		}
	}
	if len(got) != 3 {
		t.Errorf("read %d files", len(got))
	}
}

// TestFastPathLeftovers: a "..data_tmp" left by an interrupted swap and a
// regular file where a name's symlink belongs are both replaced.
func TestFastPathLeftovers(t *testing.T) {
	tests := map[string]struct {
		prepare func(t *testing.T, dir string)
	}{
		"stale ..data_tmp before the second write": {func(t *testing.T, dir string) {
			if err := os.Symlink("nowhere", filepath.Join(dir, tmpDataDir)); err != nil {
				t.Fatal(err)
			}
		}},
		"regular file at a name": {func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "b"), []byte("written by someone else"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Write(dir, []File{{Path: "a", Data: []byte("1")}}); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, dir)
			if _, err := Write(dir, []File{{Path: "a", Data: []byte("2")}, {Path: "b", Data: []byte("3")}}); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]string{"a": "2", "b": "3"} {
				b, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", p, b, err, want)
				}
				if target, err := os.Readlink(filepath.Join(dir, p)); err != nil || target != filepath.Join(DataDir, p) {
					t.Errorf("%s is not a link into %s: %q, %v", p, DataDir, target, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, tmpDataDir)); !os.IsNotExist(err) {
				t.Errorf("%s left behind: %v", tmpDataDir, err)
			}
		})
	}
}
