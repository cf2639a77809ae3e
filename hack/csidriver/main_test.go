package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestManifestUpToDate fails when manifests/csi/csidriver.yaml differs from
// what the generator writes (run `make csidriver`).
func TestManifestUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "csidriver.yaml")
	if err := run(out, nil, false); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "manifests", "csi", "csidriver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("manifests/csi/csidriver.yaml is stale: run `make csidriver`\n--- committed\n%s\n--- generated\n%s", got, want)
	}
}
