// Package image builds container images for the end-to-end cluster without a
// container engine or a registry: each image is one uncompressed layer that
// holds static binaries, plus an OCI config and manifest. Images are written
// as one OCI image-layout archive that `ctr images import` loads, and can be
// served read-only over the registry HTTP API (Registry) for pods whose pull
// policy is Always (an image tagged :latest without a pull policy).
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types written by this package.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// epoch is the modification time of every layer entry, so that the same
// inputs always give the same digests.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one file of an image's layer.
type File struct {
	// Path inside the image, e.g. "/ssi-agent".
	Path string
	// Mode is the permission bits, e.g. 0o755.
	Mode int64
	// Source is a file on the host to copy; Data is used when Source is "".
	Source string
	Data   []byte
}

// Spec describes one image.
type Spec struct {
	// Ref is the full reference, e.g. "docker.io/library/myapp:latest".
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	User       string
	Env        []string
	WorkingDir string
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform names the OS and architecture of an image.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Image is a built image: its blobs by digest and its manifest.
type Image struct {
	Ref      string
	Manifest Descriptor
	// Blobs holds the manifest, config and layer, by digest.
	Blobs map[string][]byte
}

// Repository returns the image's repository path as a registry sees it,
// e.g. "library/myapp" for "docker.io/library/myapp:latest".
func (i *Image) Repository() string {
	name, _ := splitRef(i.Ref)
	if j := strings.Index(name, "/"); j >= 0 && strings.ContainsAny(name[:j], ".:") {
		return name[j+1:]
	}
	return name
}

// Tag returns the tag of the image's reference.
func (i *Image) Tag() string {
	_, tag := splitRef(i.Ref)
	return tag
}

func splitRef(ref string) (name, tag string) {
	slash := strings.LastIndex(ref, "/")
	if c := strings.LastIndex(ref, ":"); c > slash {
		return ref[:c], ref[c+1:]
	}
	return ref, "latest"
}

// Build assembles the layer, config and manifest of spec.
func Build(spec Spec) (*Image, error) {
	if spec.Ref == "" {
		return nil, fmt.Errorf("image spec without a reference")
	}
	layer, err := buildLayer(spec.Files)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	layerDigest := digest(layer)
	env := spec.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": spec.Entrypoint,
			"Cmd":        spec.Cmd,
			"User":       spec.User,
			"Env":        env,
			"WorkingDir": spec.WorkingDir,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "ssi e2e image builder"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	man := map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeManifest,
		"config":        Descriptor{MediaType: MediaTypeConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))},
		"layers":        []Descriptor{{MediaType: MediaTypeLayer, Digest: layerDigest, Size: int64(len(layer))}},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Ref: spec.Ref,
		Manifest: Descriptor{
			MediaType: MediaTypeManifest,
			Digest:    digest(manJSON),
			Size:      int64(len(manJSON)),
			Platform:  &Platform{Architecture: runtime.GOARCH, OS: "linux"},
		},
		Blobs: map[string][]byte{
			layerDigest:     layer,
			digest(cfgJSON): cfgJSON,
			digest(manJSON): manJSON,
		},
	}
	return img, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// buildLayer writes a tar with the files and every parent directory.
func buildLayer(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		p := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if p == "" || p == "." {
			return nil, fmt.Errorf("file with an empty path")
		}
		var parents []string
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			mode := int64(0o755)
			if d == "tmp" {
				mode = 0o1777
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		data := f.Data
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("read %s for %s: %w", f.Source, f.Path, err)
			}
			data = b
		}
		mode := f.Mode
		if strings.HasSuffix(f.Path, "/") {
			if mode == 0 {
				mode = 0o755
				if p == "tmp" {
					mode = 0o1777
				}
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			dirs[p] = true
			continue
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive writes images as one OCI image-layout tar, the format
// `ctr images import` reads. Each manifest carries the image name in the
// annotations containerd and the OCI spec use.
func WriteArchive(w io.Writer, images ...*Image) error {
	tw := tar.NewWriter(w)
	write := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	seen := map[string]bool{}
	var index []Descriptor
	for _, img := range images {
		digests := make([]string, 0, len(img.Blobs))
		for d := range img.Blobs {
			digests = append(digests, d)
		}
		sort.Strings(digests)
		for _, d := range digests {
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), img.Blobs[d]); err != nil {
				return err
			}
		}
		desc := img.Manifest
		desc.Annotations = map[string]string{
			"io.containerd.image.name":          img.Ref,
			"org.opencontainers.image.ref.name": img.Tag(),
		}
		index = append(index, desc)
	}
	idx, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeIndex, "manifests": index})
	if err != nil {
		return err
	}
	if err := write("index.json", idx); err != nil {
		return err
	}
	return tw.Close()
}
