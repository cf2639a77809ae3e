package csi

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/mountinfo"
)

// Mounter is the node's mount table as the shim needs it.
type Mounter interface {
	// IsMountPoint reports whether path is a mount point. A missing path
	// is not one.
	IsMountPoint(path string) (bool, error)
	// MountTmpfs mounts an empty tmpfs on the existing directory path.
	MountTmpfs(path string) error
	// Unmount unmounts path; a path that is not mounted or missing is not
	// an error.
	Unmount(path string) error
}

// TmpfsFlags and TmpfsData are how secrets volumes are mounted: no device
// files and no set-uid programs can appear in them, and the root is
// readable by every user the pod runs as. SystemMounter adds size=.
const (
	TmpfsFlags = unix.MS_NOSUID | unix.MS_NODEV
	TmpfsData  = "mode=0755"
)

// SystemMounter mounts with mount(2) in the shim's mount namespace, which
// shares the kubelet directory with the host (bidirectional propagation).
type SystemMounter struct {
	// SizeBytes is each tmpfs's size=, so that no volume can take the
	// node's memory; 0 means limits.Sizes{}.TmpfsBytes().
	SizeBytes int64
}

// tmpfsData is TmpfsData with the size= of a volume's tmpfs.
func tmpfsData(size int64) string {
	if size <= 0 {
		size = limits.Sizes{}.TmpfsBytes()
	}
	return TmpfsData + ",size=" + strconv.FormatInt(size, 10)
}

// IsMountPoint compares the device of path with its parent's and, when they
// are equal (a bind mount of the same file system), reads the mount table.
func (SystemMounter) IsMountPoint(path string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.EIO) || errors.Is(err, unix.ESTALE) {
			// A broken mount is still a mount point; the caller unmounts it.
			return true, nil
		}
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, nil
	}
	if err := unix.Lstat(filepath.Dir(path), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(path), err)
	}
	if st.Dev != parent.Dev {
		return true, nil
	}
	return mountinfo.IsMountPoint(mountinfo.Self, path)
}

// MountTmpfs implements Mounter.
func (m SystemMounter) MountTmpfs(path string) error {
	if err := unix.Mount("tmpfs", path, "tmpfs", TmpfsFlags, tmpfsData(m.SizeBytes)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", path, err)
	}
	return nil
}

// Unmount implements Mounter.
func (SystemMounter) Unmount(path string) error {
	// Never follow a symbolic link planted at the target.
	err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", path, err)
}
