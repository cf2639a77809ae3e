// Package atomicdir writes a set of files into a directory the way kubelet
// writes Secret and ConfigMap volumes: the content lives in a timestamped
// directory, a "..data" symlink is swapped atomically to publish a new set,
// and every user-visible name is a symlink through "..data". A reader that
// resolves "..data" once sees one complete set; a failed write leaves the
// published set untouched.
//
// Beyond kubelet, after each swap the writer touches (without following) the
// user-visible entries whose content changed, so that watchers of file names
// get an event under the name they watch.
package atomicdir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// DataDir is the symlink that points at the current timestamped directory.
	DataDir = "..data"
	// tmpDataDir is the symlink created before being renamed over DataDir.
	tmpDataDir = "..data_tmp"
	// DefaultMode is the file mode used when a file does not set one; it is
	// the upstream driver's default.
	DefaultMode fs.FileMode = 0o644
	// tsLayout prefixes timestamped directories, as kubelet names them.
	tsLayout = "..2006_01_02_15_04_05."
)

// File is one file of the payload.
type File struct {
	// Path is relative to the directory, slash-separated, and may be nested.
	Path string
	// Mode is the permission of the file; zero means DefaultMode unless
	// ExactMode is set.
	Mode fs.FileMode
	// ExactMode writes Mode as it is, zero included (0000). A provider
	// plugin's file of mode 0 is written so, as the upstream driver writes
	// it; the built-in providers leave it false, so their zero keeps
	// meaning "the volume's default".
	ExactMode bool
	// Data is the content.
	Data []byte
}

// Result says what a Write changed.
type Result struct {
	// Swapped is true when a new set was published.
	Swapped bool
	// Changed lists the user-visible top-level names whose content or mode
	// changed or that were added, sorted.
	Changed []string
	// Removed lists the user-visible top-level names that disappeared, sorted.
	Removed []string
}

// ValidatePath reports whether p is a path the writer accepts: relative,
// clean, inside the directory, and its first element not using the reserved
// ".." prefix.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return errors.New("path is empty")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.Contains(p, "\\"):
		return fmt.Errorf("path %q contains a backslash", p)
	case len(p) > 4096:
		return fmt.Errorf("path %q is longer than 4096 bytes", p[:64]+"...")
	}
	for i, el := range strings.Split(p, "/") {
		switch {
		case el == "":
			return fmt.Errorf("path %q has an empty element", p)
		case el == "." || el == "..":
			return fmt.Errorf("path %q contains %q", p, el)
		case i == 0 && strings.HasPrefix(el, ".."):
			// The writer's own names ("..data", "..data_tmp", timestamped
			// sets) live only at the top of the directory; deeper elements
			// are inside a set, as in the upstream driver's writer.
			return fmt.Errorf("path %q starts with \"..\", which is reserved for the writer's own entries", p)
		case len(el) > 255:
			return fmt.Errorf("path %q has an element longer than 255 bytes", p)
		}
	}
	return nil
}

// LastByPath drops every element of xs whose path (as pathOf reads it) a
// later element also has, keeping the order of the rest; xs itself is
// returned when no path repeats. It is the upstream driver's rule for two
// objects producing one file name (its writer keys files by path, so the
// later one is served), shared by the files a fetch publishes
// (provider.LastWriterWins) and the files admission lists (spc.Class.Files).
func LastByPath[T any](xs []T, pathOf func(T) string) []T {
	last := make(map[string]int, len(xs))
	for i, x := range xs {
		last[pathOf(x)] = i
	}
	if len(last) == len(xs) {
		return xs
	}
	out := make([]T, 0, len(last))
	for i, x := range xs {
		if last[pathOf(x)] == i {
			out = append(out, x)
		}
	}
	return out
}

// ValidatePayload checks every path and rejects duplicates and paths that
// would be both a file and a directory.
func ValidatePayload(files []File) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := ValidatePath(f.Path); err != nil {
			return err
		}
		if f.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("file %q: mode %o has bits other than permissions", f.Path, f.Mode)
		}
		if seen[f.Path] {
			return fmt.Errorf("file %q appears more than once", f.Path)
		}
		seen[f.Path] = true
	}
	for p := range seen {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if seen[d] {
				return fmt.Errorf("file %q is also the directory of %q", d, p)
			}
		}
	}
	return nil
}

// Write publishes files into dir. When the payload equals what is published
// (same paths, modes and content), nothing is written and Swapped is false.
// Otherwise a new timestamped directory is written in full, "..data" is
// swapped to it, user-visible symlinks are created or removed, changed names
// are touched, and the old directory is deleted. On error before the swap the
// published set is unchanged.
func Write(dir string, files []File) (Result, error) {
	return write(dir, files, time.Now)
}

func write(dir string, files []File, now func() time.Time) (Result, error) {
	if err := ValidatePayload(files); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create %s: %w", dir, err)
	}
	payload := make(map[string]File, len(files))
	for _, f := range files {
		if f.Mode == 0 && !f.ExactMode {
			f.Mode = DefaultMode
		}
		payload[f.Path] = f
	}

	oldTS, err := os.Readlink(filepath.Join(dir, DataDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("read %s: %w", DataDir, err)
	}
	var old map[string]File
	if oldTS != "" {
		if old, err = readSet(filepath.Join(dir, oldTS)); err != nil {
			// An unreadable old set is rewritten in full.
			old = nil
		}
	}
	changed, removed := diff(old, payload)
	if oldTS != "" && old != nil && len(changed) == 0 && len(removed) == 0 {
		// Nothing to publish; repair names a crash may have left missing.
		var errs []error
		for _, name := range topLevel(payload) {
			errs = append(errs, ensureLink(dir, name))
		}
		return Result{}, errors.Join(errs...)
	}

	tsDir, err := os.MkdirTemp(dir, now().UTC().Format(tsLayout))
	if err != nil {
		return Result{}, fmt.Errorf("create timestamped directory in %s: %w", dir, err)
	}
	// The directory must be traversable by readers running as other users.
	// It keeps the setgid bit it inherited from a volume root with an
	// fsGroup (kubelet makes that root setgid and of the fsGroup), so that
	// the files created in it get the fsGroup too and a group-readable
	// mode such as 0440 lets the pod's other users read them.
	if err := os.Chmod(tsDir, dirMode(tsDir)); err != nil {
		_ = os.RemoveAll(tsDir)
		return Result{}, fmt.Errorf("chmod %s: %w", tsDir, err)
	}
	if err := writeSet(tsDir, payload); err != nil {
		_ = os.RemoveAll(tsDir)
		return Result{}, err
	}
	tsName := filepath.Base(tsDir)

	if err := publish(dir, tsName, oldTS == ""); err != nil {
		_ = os.RemoveAll(tsDir)
		return Result{}, err
	}

	// From here on the new set is published; the remaining steps only fix up
	// names, so they report errors but the swap stands.
	res := Result{Swapped: true, Changed: changed, Removed: removed}
	var errs []error
	tops := topLevel(payload)
	for _, name := range tops {
		if err := ensureLink(dir, name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range removed {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
		}
	}
	stamp := now()
	for _, name := range changed {
		if oldTS == "" {
			// First set: every name was just created, which watchers
			// already saw under that name.
			break
		}
		if err := touch(dir, name, stamp); err != nil {
			errs = append(errs, err)
		}
	}
	if oldTS != "" && oldTS != tsName {
		if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
			errs = append(errs, fmt.Errorf("remove old set %s: %w", oldTS, err))
		}
	}
	// Sets left by an interrupted write (the agent killed between creating
	// a directory and swapping) would otherwise stay in the volume, which
	// is memory-backed, for the pod's life.
	if err := removeOrphans(dir, tsName); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// publish points "..data" at tsName: a new symlink when there was none
// (creating it is atomic), otherwise a temporary symlink renamed over it.
func publish(dir, tsName string, first bool) error {
	data := filepath.Join(dir, DataDir)
	if first {
		err := os.Symlink(tsName, data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", DataDir, err)
		}
	}
	tmpLink := filepath.Join(dir, tmpDataDir)
	err := os.Symlink(tsName, tmpLink)
	if errors.Is(err, fs.ErrExist) {
		// Left by an interrupted write.
		_ = os.Remove(tmpLink)
		err = os.Symlink(tsName, tmpLink)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", tmpDataDir, err)
	}
	if err := os.Rename(tmpLink, data); err != nil {
		_ = os.Remove(tmpLink)
		return fmt.Errorf("swap %s: %w", DataDir, err)
	}
	return nil
}

// Read returns the published set of dir, with modes; it resolves "..data"
// once, so the set is consistent.
func Read(dir string) ([]File, error) {
	ts, err := os.Readlink(filepath.Join(dir, DataDir))
	if err != nil {
		return nil, err
	}
	set, err := readSet(filepath.Join(dir, ts))
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(set))
	for _, f := range set {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// dirMode is the mode a timestamped directory gets: 0755, plus the setgid
// bit when the kernel gave it one because its parent has it.
func dirMode(tsDir string) fs.FileMode {
	mode := fs.FileMode(0o755)
	if fi, err := os.Lstat(tsDir); err == nil && fi.Mode()&fs.ModeSetgid != 0 {
		mode |= fs.ModeSetgid
	}
	return mode
}

func writeSet(root string, payload map[string]File) error {
	for _, f := range payload {
		full := filepath.Join(root, filepath.FromSlash(f.Path))
		// Top-level files go straight into root, which exists.
		if strings.Contains(f.Path, "/") {
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return fmt.Errorf("create directory for %s: %w", f.Path, err)
			}
		}
		if err := writeFile(full, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	return nil
}

// writeFile creates a new file with exactly mode (set again after the
// umask filtered it) using plain system calls: an os.File would also try
// to register the descriptor with the runtime poller, five more calls per
// file, which dominates publishing a volume of small secrets. O_EXCL: the
// timestamped directory is new, so nothing may be there already.
func writeFile(name string, data []byte, mode fs.FileMode) error {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(mode.Perm()))
	})
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n, err := retryEINTR(func() (int, error) { return unix.Write(fd, data) })
		if err != nil {
			_ = unix.Close(fd)
			return err
		}
		data = data[n:]
	}
	if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("chmod: %w", err)
	}
	return unix.Close(fd)
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

func readSet(root string) (map[string]File, error) {
	set := map[string]File{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		set[rel] = File{Path: rel, Mode: info.Mode().Perm(), Data: data}
		return nil
	})
	return set, err
}

// diff returns the top-level names whose subtree changed or appeared, and
// those that disappeared.
func diff(old, cur map[string]File) (changed, removed []string) {
	ch := map[string]bool{}
	for p, f := range cur {
		o, ok := old[p]
		if !ok || o.Mode != f.Mode || !bytes.Equal(o.Data, f.Data) {
			ch[top(p)] = true
		}
	}
	curTop := map[string]bool{}
	for p := range cur {
		curTop[top(p)] = true
	}
	rm := map[string]bool{}
	for p := range old {
		t := top(p)
		if !curTop[t] {
			rm[t] = true
		} else if _, ok := cur[p]; !ok {
			ch[t] = true // a file vanished from a surviving directory
		}
	}
	return sortedKeys(ch), sortedKeys(rm)
}

func topLevel(payload map[string]File) []string {
	m := map[string]bool{}
	for p := range payload {
		m[top(p)] = true
	}
	return sortedKeys(m)
}

func top(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// removeOrphans deletes timestamped directories other than keep.
func removeOrphans(dir, keep string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var errs []error
	for _, de := range des {
		n := de.Name()
		if n == keep || !de.IsDir() || !isTimestamped(n) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			errs = append(errs, fmt.Errorf("remove abandoned set %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// isTimestamped reports whether name has the form of a timestamped set
// directory, "..YYYY_MM_DD_HH_MM_SS.<digits>".
func isTimestamped(name string) bool {
	if len(name) < len(tsLayout)+1 || !strings.HasPrefix(name, "..") {
		return false
	}
	if _, err := time.Parse(tsLayout, name[:len(tsLayout)]); err != nil {
		return false
	}
	for _, r := range name[len(tsLayout):] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ensureLink makes name a symlink to ..data/name, replacing whatever else is
// there atomically.
func ensureLink(dir, name string) error {
	want := filepath.Join(DataDir, name)
	link := filepath.Join(dir, name)
	got, err := os.Readlink(link)
	if err == nil && got == want {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing there yet: creating the link is atomic by itself.
		if err := os.Symlink(want, link); err == nil || !errors.Is(err, fs.ErrExist) {
			if err != nil {
				return fmt.Errorf("create symlink for %s: %w", name, err)
			}
			return nil
		}
	}
	tmp := filepath.Join(dir, DataDir+"_link_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(want, tmp); err != nil {
		return fmt.Errorf("create symlink for %s: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("publish symlink for %s: %w", name, err)
	}
	return nil
}

// touch updates the times of the symlink itself, which gives an inotify
// watcher of dir an attribute event under name.
func touch(dir, name string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, name), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("touch %s: %w", name, err)
	}
	return nil
}
