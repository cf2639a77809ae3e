package atomicdir

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestFsnotifyWatcherSeesChangedNames watches the volume directory the way
// applications do (a non-recursive watch on the directory) and checks that,
// apart from the writer's own "..*" names, events arrive for exactly the
// names whose content changed, and that reading such a name on its event
// gives the new content.
func TestFsnotifyWatcherSeesChangedNames(t *testing.T) {
	base := []File{
		{Path: "db-password", Data: []byte("pw-1")},
		{Path: "api-key", Data: []byte("key-1")},
		{Path: "tls.crt", Data: []byte("crt-1")},
		{Path: "certs/ca.crt", Data: []byte("ca-1")},
	}
	with := func(changes ...File) []File {
		out := []File{}
		byPath := map[string]File{}
		for _, f := range changes {
			byPath[f.Path] = f
		}
		for _, f := range base {
			if c, ok := byPath[f.Path]; ok {
				if c.Data != nil || c.Mode != 0 {
					out = append(out, c)
				}
				delete(byPath, f.Path)
				continue
			}
			out = append(out, f)
		}
		for _, f := range changes {
			if _, ok := byPath[f.Path]; ok {
				out = append(out, f)
			}
		}
		return out
	}
	tests := map[string]struct {
		next []File
		// names is the exact set of user-visible names that get events.
		names []string
		// removed names get a Remove event; the others must be readable
		// with their new content.
		removed []string
	}{
		"one of four changed":   {next: with(File{Path: "db-password", Data: []byte("pw-2")}), names: []string{"db-password"}},
		"two changed":           {next: with(File{Path: "db-password", Data: []byte("pw-2")}, File{Path: "tls.crt", Data: []byte("crt-2")}), names: []string{"db-password", "tls.crt"}},
		"nested file changed":   {next: with(File{Path: "certs/ca.crt", Data: []byte("ca-2")}), names: []string{"certs"}},
		"mode changed":          {next: with(File{Path: "api-key", Mode: 0o600, Data: []byte("key-1")}), names: []string{"api-key"}},
		"object added":          {next: with(File{Path: "new-object", Data: []byte("new")}), names: []string{"new-object"}},
		"object removed":        {next: with(File{Path: "api-key"}), names: []string{"api-key"}, removed: []string{"api-key"}},
		"nothing changed":       {next: base},
		"changed and removed":   {next: with(File{Path: "tls.crt"}, File{Path: "db-password", Data: []byte("pw-3")}), names: []string{"db-password", "tls.crt"}, removed: []string{"tls.crt"}},
		"same size new content": {next: with(File{Path: "api-key", Data: []byte("key-9")}), names: []string{"api-key"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mustWrite(t, dir, base...)

			w, err := fsnotify.NewWatcher()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Close() }()
			if err := w.Add(dir); err != nil {
				t.Fatal(err)
			}
			res := mustWrite(t, dir, tc.next...)
			wantSwap := len(tc.names) > 0
			if res.Swapped != wantSwap {
				t.Fatalf("Swapped = %v, want %v", res.Swapped, wantSwap)
			}

			next := map[string][]byte{}
			for _, f := range tc.next {
				next[f.Path] = f.Data
			}
			seen := map[string]fsnotify.Op{}
			quiet := time.NewTimer(300 * time.Millisecond)
			defer quiet.Stop()
		collect:
			for {
				select {
				case ev := <-w.Events:
					n := filepath.Base(ev.Name)
					if strings.HasPrefix(n, "..") {
						continue
					}
					seen[n] |= ev.Op
					// An application reacting to the event reads the
					// name it watches and must get the new content.
					if data, ok := next[n]; ok && !ev.Has(fsnotify.Remove) {
						got, err := os.ReadFile(filepath.Join(dir, n))
						if err != nil {
							t.Errorf("read %s on %v: %v", n, ev.Op, err)
						} else if string(got) != string(data) {
							t.Errorf("read %s on %v: %q, want %q", n, ev.Op, got, data)
						}
					}
					quiet.Reset(300 * time.Millisecond)
				case err := <-w.Errors:
					t.Fatal(err)
				case <-quiet.C:
					break collect
				}
			}
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			sort.Strings(names)
			if strings.Join(names, ",") != strings.Join(tc.names, ",") {
				t.Errorf("events for %q (%v), want exactly %q", names, seen, tc.names)
			}
			for _, n := range tc.removed {
				if !seen[n].Has(fsnotify.Remove) {
					t.Errorf("%s: %v, want a Remove event", n, seen[n])
				}
			}
			for _, n := range tc.names {
				if strings.Contains(strings.Join(tc.removed, ","), n) {
					continue
				}
				if !seen[n].Has(fsnotify.Chmod) && !seen[n].Has(fsnotify.Create) {
					t.Errorf("%s: %v, want an attribute (Chmod) or Create event", n, seen[n])
				}
			}
		})
	}
}
