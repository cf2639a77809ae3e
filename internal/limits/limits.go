// Package limits is what one SecretProviderClass may make a process read,
// hold and write: the size caps of objects, volumes and backend responses,
// and which files a class parameter may name. The node shim and the sync
// controller serve every namespace, so one tenant's class must not be able
// to exhaust their memory (a /dev/zero CA file, a 100 MB Vault value) or
// read the process's files; the in-pod agent applies the same size caps to
// the pod's own files and backends.
package limits

import (
	"errors"
	"flag"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults of Sizes. One object is capped like a Kubernetes Secret (1 MiB);
// a volume like the largest response the upstream driver accepts from a
// provider plugin (4 MiB).
const (
	DefaultObjectBytes int64 = 1 << 20
	DefaultVolumeBytes int64 = 4 << 20
)

// ErrTooLarge is matched (errors.Is) by every error of this package that
// reports data beyond a cap.
var ErrTooLarge = errors.New("over the size limit")

// TooLargeError is data beyond a cap. Its message names what was read and
// the limit, never the content.
type TooLargeError struct {
	// What names the data: "the response of GET https://vault/v1/...",
	// "file /etc/ssi/ca.pem", "object \"db\"".
	What string
	// Limit is the cap in bytes.
	Limit int64
	// Size is the size found when known (files, objects); 0 when reading
	// stopped at the limit.
	Size int64
}

func (e *TooLargeError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("%s is %d bytes, more than the limit of %d bytes", e.What, e.Size, e.Limit)
	}
	return fmt.Sprintf("%s is larger than the limit of %d bytes", e.What, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Sizes are the size caps of one process. The zero value means the
// defaults.
type Sizes struct {
	// ObjectBytes caps the files of one object together; 0 means
	// DefaultObjectBytes.
	ObjectBytes int64
	// VolumeBytes caps all files of one volume (or synced class); 0 means
	// DefaultVolumeBytes.
	VolumeBytes int64
}

// Complete returns s with defaults filled in, or an error naming the
// invalid cap.
func (s Sizes) Complete() (Sizes, error) {
	if s.ObjectBytes < 0 || s.VolumeBytes < 0 {
		return s, fmt.Errorf("size limits must not be negative (object %d, volume %d)", s.ObjectBytes, s.VolumeBytes)
	}
	if s.ObjectBytes == 0 {
		s.ObjectBytes = DefaultObjectBytes
	}
	if s.VolumeBytes == 0 {
		s.VolumeBytes = DefaultVolumeBytes
	}
	if s.VolumeBytes < s.ObjectBytes {
		return s, fmt.Errorf("the volume limit (%d bytes) is smaller than the object limit (%d bytes)", s.VolumeBytes, s.ObjectBytes)
	}
	return s, nil
}

// orDefault is Complete without the error, for readers of an unchecked
// value: invalid caps fall back to the defaults.
func (s Sizes) orDefault() Sizes {
	c, err := s.Complete()
	if err != nil {
		return Sizes{}.orDefault()
	}
	return c
}

// Object is the per-object cap in effect.
func (s Sizes) Object() int64 { return s.orDefault().ObjectBytes }

// Volume is the per-volume cap in effect.
func (s Sizes) Volume() int64 { return s.orDefault().VolumeBytes }

// ResponseBytes caps one backend response body or plugin response: the
// volume cap, since a response may carry several objects (a plugin's whole
// volume, a Vault secret read whole as JSON), plus room for its encoding
// (base64 and JSON escaping of the largest object) and envelope.
func (s Sizes) ResponseBytes() int64 {
	c := s.orDefault()
	return c.VolumeBytes + 2*c.ObjectBytes + 64<<10
}

// FileBytes caps one file named by a class parameter (a CA bundle, an
// Azure environment file): the object cap.
func (s Sizes) FileBytes() int64 { return s.Object() }

// TmpfsBytes is the size= of a tmpfs holding one volume: the atomic writer
// keeps the previous set until the new one is swapped in, so twice the
// volume cap, plus room for directories and symbolic links.
func (s Sizes) TmpfsBytes() int64 { return 2*s.Volume() + 1<<20 }

// Config is what an operator sets for a shared process (the node shim, the
// sync controller): the size caps and the directory of files that class
// parameters may name.
type Config struct {
	Sizes
	// ClassFilesDir is the only directory whose regular files class
	// parameters (vaultCACertPath, cloudEnvFileName, ...) may name in a
	// shared process; empty refuses every such class.
	ClassFilesDir string
}

// AddFlags registers --max-object-bytes, --max-volume-bytes and
// --class-files-dir, the same names in every binary.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.Var((*bytesFlag)(&c.ObjectBytes), "max-object-bytes", "largest object (all its files), e.g. 1Mi; larger objects fail with InvalidContent (default 1Mi)")
	fs.Var((*bytesFlag)(&c.VolumeBytes), "max-volume-bytes", "largest volume or synced class (all its files), e.g. 4Mi; backend and plugin responses are capped at this plus twice the object limit (default 4Mi)")
	fs.StringVar(&c.ClassFilesDir, "class-files-dir", "", "only directory whose regular files class parameters (vaultCACertPath, vaultCADirectory, vaultTLSClientCertPath/KeyPath, cloudEnvFileName) may name; empty refuses such classes")
}

// bytesFlag is a byte count written as a Kubernetes quantity (1Mi, 4096).
type bytesFlag int64

func (b *bytesFlag) String() string {
	if b == nil || *b == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a byte count such as 1Mi or 1048576", s)
	}
	v, ok := q.AsInt64()
	if !ok || v <= 0 {
		return fmt.Errorf("%q is not a positive whole number of bytes", s)
	}
	*b = bytesFlag(v)
	return nil
}
