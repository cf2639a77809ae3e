package atomicdir

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteKeepsFSGroup writes into a volume root laid out as kubelet lays
// out an emptyDir of a pod with an fsGroup (group fsGroup, mode 2777), then
// reads every file as real users in child processes: an app with another
// user in the fsGroup reads a 0440 file but not a 0400 one, and a user
// outside the group reads only the 0444 one. Before the writer kept the
// setgid bit of its timestamped directory, the files got the writer's
// group and the 0440 file was unreadable by the app.
func TestWriteKeepsFSGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		requireCapability(t, "root (reading files as other users)", fmt.Errorf("running as uid %d, not root", os.Geteuid()))
	}
	const (
		fsGroup  = 4242
		appUser  = 1001 // in the fsGroup, as kubelet adds it to every container
		outsider = 1002 // not in the fsGroup
	)
	// t.TempDir is <tmp>/<test name><n>/<seq>, both private: open them
	// for the readers.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "vol")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, fsGroup); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "group-readable", Mode: 0o440, Data: []byte("g")},
		{Path: "owner-only", Mode: 0o400, Data: []byte("o")},
		{Path: "world-readable", Mode: 0o444, Data: []byte("w")},
		{Path: "nested/group-readable", Mode: 0o440, Data: []byte("n")},
	}
	// Twice: the first set and a rotation each create a new directory.
	for i, data := range []string{"1", "2"} {
		for j := range files {
			files[j].Data = []byte(data)
		}
		if _, err := Write(dir, files); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		for _, f := range files {
			fi, err := os.Stat(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != fsGroup {
				t.Errorf("write %d: %s has group %d, want the fsGroup %d", i, f.Path, gid, fsGroup)
			}
		}
		readers := map[string]struct {
			uid    uint32
			groups []uint32
			path   string
			want   bool
		}{
			"app reads 0440":            {appUser, []uint32{fsGroup}, "group-readable", true},
			"app reads nested 0440":     {appUser, []uint32{fsGroup}, "nested/group-readable", true},
			"app cannot read 0400":      {appUser, []uint32{fsGroup}, "owner-only", false},
			"app reads 0444":            {appUser, []uint32{fsGroup}, "world-readable", true},
			"outsider cannot read 0440": {outsider, nil, "group-readable", false},
			"outsider reads 0444":       {outsider, nil, "world-readable", true},
		}
		for name, r := range readers {
			cmd := exec.Command("cat", filepath.Join(dir, r.path))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.uid, Groups: r.groups}}
			out, err := cmd.CombinedOutput()
			if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
				t.Fatalf("%s: %v", name, err)
			}
			if got := err == nil && string(out) == data; got != r.want {
				t.Errorf("write %d, %s: read %v (%q), want %v", i, name, got, out, r.want)
			}
		}
	}
}
