package limits

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrFileNotAllowed is matched (errors.Is) by the refusal of a file that
// a class parameter names outside what the process may read.
var ErrFileNotAllowed = errors.New("file not allowed")

// Files decides which files the parameters of a class may name, and reads
// them: only regular files (never a device, FIFO or socket), through a size
// limit. In a shared process only files under Dir qualify, with symbolic
// links resolved beneath Dir; in the pod (Shared false) the pod's own
// files are the pod's business and any path qualifies.
type Files struct {
	// Shared is set in processes that serve many tenants.
	Shared bool
	// Dir is the operator's directory of class files; empty in a shared
	// process refuses every file.
	Dir string
	// MaxBytes caps one file; 0 means DefaultObjectBytes.
	MaxBytes int64
}

// maxDirEntries bounds the files read from one directory parameter.
const maxDirEntries = 256

func (f Files) max() int64 {
	if f.MaxBytes > 0 {
		return f.MaxBytes
	}
	return DefaultObjectBytes
}

// notAllowed is the refusal of a parameter's path, naming the parameter,
// the path and the rule (never content).
type notAllowed struct {
	param, path, why string
}

func (e *notAllowed) Error() string {
	return fmt.Sprintf("parameters.%s %q: %s", e.param, e.path, e.why)
}

func (e *notAllowed) Is(target error) bool { return target == ErrFileNotAllowed }

// check returns the path to open and, in a shared process, the directory
// it must resolve beneath (relative path to it).
func (f Files) check(param, path string) (dir, rel string, err error) {
	if path == "" {
		return "", "", &notAllowed{param, path, "is empty"}
	}
	if !f.Shared {
		return "", path, nil
	}
	if f.Dir == "" {
		return "", "", &notAllowed{param, path, "names a file, and this process serves every namespace (node shim or sync controller): it reads class files only under the operator's --class-files-dir, which is not set"}
	}
	if !filepath.IsAbs(path) {
		return "", "", &notAllowed{param, path, "is not an absolute path"}
	}
	dir = filepath.Clean(f.Dir)
	r, err := filepath.Rel(dir, filepath.Clean(path))
	if err != nil || r == "." || r == ".." || strings.HasPrefix(r, "../") {
		return "", "", &notAllowed{param, path, fmt.Sprintf("is not inside the class files directory %s", dir)}
	}
	return dir, r, nil
}

// open opens a regular file for reading, beneath dir when dir is set.
// It first opens the path with O_PATH, which neither reads nor triggers a
// device's open (a tape rewinds on open; a FIFO blocks), checks that it is
// a regular file within the size cap, and only then opens that same inode
// for reading, through /proc/self/fd.
func (f Files) open(param, dir, rel string) (*os.File, error) {
	name := filepath.Join(dir, rel)
	pathFD, err := f.openAt(dir, rel, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
			return nil, &notAllowed{param, name, fmt.Sprintf("resolves outside the class files directory %s", dir)}
		}
		return nil, fmt.Errorf("parameters.%s: open %s: %w", param, name, err)
	}
	defer func() { _ = unix.Close(pathFD) }()
	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil {
		return nil, fmt.Errorf("parameters.%s: stat %s: %w", param, name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &notAllowed{param, name, "is not a regular file"}
	}
	if st.Size > f.max() {
		return nil, fmt.Errorf("parameters.%s: %w", param, &TooLargeError{What: "file " + name, Limit: f.max(), Size: st.Size})
	}
	const flags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathFD), flags, 0)
	if err != nil {
		// No /proc: open the path again; the inode is compared below.
		if fd, err = f.openAt(dir, rel, flags); err != nil {
			return nil, fmt.Errorf("parameters.%s: open %s: %w", param, name, err)
		}
	}
	file := os.NewFile(uintptr(fd), name)
	var again unix.Stat_t
	if err := unix.Fstat(fd, &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		_ = file.Close()
		return nil, fmt.Errorf("parameters.%s: %s changed while it was opened", param, name)
	}
	return file, nil
}

// openAt opens rel with flags: beneath dir when dir is set.
func (f Files) openAt(dir, rel string, flags int) (int, error) {
	if dir == "" {
		return unix.Open(rel, flags, 0)
	}
	return openBeneath(dir, rel, flags)
}

// openBeneath opens rel beneath dir, refusing a resolution that leaves it
// (symbolic links, "..") and magic links.
func openBeneath(dir, rel string, flags int) (int, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer func() { _ = unix.Close(dfd) }()
	// flags are O_* constants, never negative.
	fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}) //nolint:gosec // G115: see above
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	// Kernels before 5.6: resolve, check, then open without following a
	// final symbolic link.
	real, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
	if err != nil {
		return -1, err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return -1, err
	}
	if r, err := filepath.Rel(realDir, real); err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return -1, unix.EXDEV
	}
	return unix.Open(real, flags|unix.O_NOFOLLOW, 0)
}

// ReadFile reads the file that parameter param names, under the rules of
// f. Errors name the parameter, the path and the rule or cause; never the
// content.
func (f Files) ReadFile(param, path string) ([]byte, error) {
	dir, rel, err := f.check(param, path)
	if err != nil {
		return nil, err
	}
	file, err := f.open(param, dir, rel)
	if err != nil {
		return nil, err
	}
	defer func() { _ = file.Close() }()
	b, err := io.ReadAll(Reader(file, f.max(), "file "+file.Name()))
	if err != nil {
		return nil, fmt.Errorf("parameters.%s: read %s: %w", param, file.Name(), err)
	}
	return b, nil
}

// ReadDir reads the regular files directly in the directory that parameter
// param names (a CA directory), sorted by name, skipping anything else;
// at most 256 files and, together, the volume cap's worth of bytes (16
// files' cap).
func (f Files) ReadDir(param, path string) ([][]byte, error) {
	dir, rel, err := f.check(param, path)
	if err != nil {
		return nil, err
	}
	full := rel
	if dir != "" {
		full = filepath.Join(dir, rel)
		// The directory itself must resolve beneath dir too.
		fd, err := openBeneath(dir, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
				return nil, &notAllowed{param, path, fmt.Sprintf("resolves outside the class files directory %s", dir)}
			}
			return nil, fmt.Errorf("parameters.%s: open %s: %w", param, full, err)
		}
		_ = unix.Close(fd)
	}
	d, err := os.Open(full)
	if err != nil {
		return nil, fmt.Errorf("parameters.%s: open %s: %w", param, full, err)
	}
	names, err := d.Readdirnames(maxDirEntries + 1)
	_ = d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parameters.%s: list %s: %w", param, full, err)
	}
	if len(names) > maxDirEntries {
		return nil, &notAllowed{param, path, fmt.Sprintf("has more than %d entries", maxDirEntries)}
	}
	sort.Strings(names)
	var out [][]byte
	var total int64
	budget := 16 * f.max()
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(full, n), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue // not a regular file: skipped, as the Vault CLI's CA directory loader skips directories
		}
		file, err := f.open(param, dir, filepath.Join(rel, n))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(Reader(file, f.max(), "file "+file.Name()))
		_ = file.Close()
		if err != nil {
			return nil, fmt.Errorf("parameters.%s: read %s: %w", param, filepath.Join(full, n), err)
		}
		if total += int64(len(b)); total > budget {
			return nil, fmt.Errorf("parameters.%s: %w", param, &TooLargeError{What: "the files of directory " + full, Limit: budget, Size: total})
		}
		out = append(out, b)
	}
	return out, nil
}
