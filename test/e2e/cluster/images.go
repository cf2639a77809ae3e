package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ssinjector/ssi/test/e2e/image"
)

// Image references of the e2e images.
const (
	PauseImage = "ssi-e2e.local/pause:e2e"
	// AppImage is the seed guide's image name; the test application is
	// published under it.
	AppImage = "docker.io/library/myapp:latest"
)

// Binary is a static Go program built for an image.
type Binary struct {
	// Package is the Go package to build, relative to the repository root.
	Package string
	// Prebuilt, when the file exists, is used instead of building.
	Prebuilt string
}

// BuildStatic builds a static (CGO_ENABLED=0) binary of pkg into out.
//
// The compile flags are those of `make test` (CGO_ENABLED=0, no -trimpath:
// tests need their source paths), so that every package `make test`
// compiled comes from the Go build cache. The Dockerfiles add -trimpath,
// which only changes the file paths in stack traces. -ldflags only affect
// the link, which `go build` never caches.
func BuildStatic(repoRoot, pkg, out string) error {
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./"+strings.TrimPrefix(pkg, "./")) //nolint:gosec // builds a package of this repository
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ProductImage builds the image of one product binary the way its
// Dockerfile does: the static binary at /<name>, user 65532, the binary as
// entrypoint.
func ProductImage(ref, binPath, name string) (*image.Image, error) {
	return image.Build(image.Spec{
		Ref:        ref,
		Files:      []image.File{{Path: "/" + name, Mode: 0o755, Source: binPath}, {Path: "/tmp/"}},
		Entrypoint: []string{"/" + name},
		User:       "65532:65532",
	})
}

// TestImages builds the pause image and the test application image from
// their sources in this repository, in dir.
func TestImages(repoRoot, dir string) ([]*image.Image, error) {
	pause := filepath.Join(dir, "pause")
	app := filepath.Join(dir, "app")
	if err := BuildStatic(repoRoot, "test/e2e/pause", pause); err != nil {
		return nil, err
	}
	if err := BuildStatic(repoRoot, "test/e2e/app", app); err != nil {
		return nil, err
	}
	p, err := image.Build(image.Spec{
		Ref:        PauseImage,
		Files:      []image.File{{Path: "/pause", Mode: 0o755, Source: pause}},
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
	})
	if err != nil {
		return nil, err
	}
	a, err := image.Build(image.Spec{
		Ref:        AppImage,
		Files:      []image.File{{Path: "/app", Mode: 0o755, Source: app}, {Path: "/tmp/"}},
		Entrypoint: []string{"/app"},
		User:       "65532:65532",
	})
	if err != nil {
		return nil, err
	}
	return []*image.Image{p, a}, nil
}
