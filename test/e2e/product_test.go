//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ssinjector/ssi/test/e2e/cluster"
	"github.com/ssinjector/ssi/test/e2e/image"
)

// Product image references. The chart's values name them; the harness
// builds them from this tree and imports them under these names.
const (
	webhookImage = "ssi-e2e.local/ssi-webhook:e2e"
	agentImage   = "ssi-e2e.local/ssi-agent:e2e"
)

// productImages builds ssi-webhook and ssi-agent as their Dockerfiles do.
func productImages(root, dir string) ([]*image.Image, error) {
	var out []*image.Image
	for _, p := range []struct{ name, pkg, ref string }{
		{"ssi-webhook", "webhook", webhookImage},
		{"ssi-agent", "agent", agentImage},
	} {
		bin := filepath.Join(dir, p.name)
		if err := cluster.BuildStatic(root, p.pkg, bin); err != nil {
			return nil, err
		}
		img, err := cluster.ProductImage(p.ref, bin, p.name)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// installCRDs applies manifests/crds (the SecretProviderClass API).
func installCRDs(ctx context.Context, root string) error {
	files, err := filepath.Glob(filepath.Join(root, "manifests", "crds", "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRDs in manifests/crds")
	}
	for _, f := range files {
		if err := applyFile(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// installProduct installs the webhook, sync controller and node shim from
// the rendered manifests, once they exist on main.
func installProduct(ctx context.Context, root string) productState {
	entries, _ := os.ReadDir(filepath.Join(root, "manifests"))
	var found []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return productState{reason: "manifests/ has no rendered product manifests yet (only CRDs); the product tests skip"}
	}
	return productState{reason: "installing " + strings.Join(found, ", ") + " is not wired yet"}
}
