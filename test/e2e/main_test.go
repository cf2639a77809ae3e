//go:build e2e

// Package e2e is the end-to-end suite: it runs the product on a real
// single-node cluster (test/e2e/cluster) with a real Vault, and applies the
// seed guide's manifests. Run it with `make e2e` (root; it installs nothing
// by itself: containerd, runc, the CNI plugins, conntrack and iptables
// must be installed, as .ci/run does). Logs of every component end up in
// test/e2e/logs/<timestamp>/.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/test/e2e/cluster"
	"github.com/ssinjector/ssi/test/e2e/image"
)

var (
	cl     *cluster.Cluster
	vault  *cluster.Vault
	logDir string
	// product says whether the product (webhook, agent, shim) is
	// installed; tests that need it fail with the reason otherwise.
	product productState
)

// productState records whether the product could be installed.
type productState struct {
	installed bool
	reason    string
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	root := testenv.RepoRoot()
	logDir = filepath.Join(root, "test", "e2e", "logs", time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Printf("e2e: component logs in %s\n", logDir)
	defer fmt.Printf("e2e: component logs in %s\n", logDir)

	var once sync.Once
	teardown := func() {
		once.Do(func() {
			if cl != nil {
				if err := cl.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, "e2e: teardown:", err)
				}
			}
		})
	}
	defer teardown()
	// ^C or SIGTERM: tear down, then exit. go test's own timeout panics
	// without running deferred code, so stop a little before it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing the cluster down\n", s)
		teardown()
		os.Exit(2)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 3*time.Minute {
			timer := time.AfterFunc(d-2*time.Minute, func() {
				fmt.Fprintf(os.Stderr, "e2e: the -timeout (%s) is about to expire: tearing the cluster down\n", d)
				teardown()
				os.Exit(3)
			})
			defer timer.Stop()
		}
	}

	ctx := context.Background()
	start := time.Now()
	images, err := buildImages(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build images:", err)
		return 1
	}
	fmt.Printf("e2e: built %d images in %s\n", len(images), time.Since(start).Round(time.Millisecond))

	cl, err = cluster.Start(ctx, cluster.Config{
		BinDir:     testenv.BinDir(),
		LogDir:     logDir,
		Images:     images,
		PauseImage: cluster.PauseImage,
		Logf:       func(format string, args ...any) { fmt.Printf("e2e: "+format+"\n", args...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start cluster:", err)
		return 1
	}
	for _, t := range cl.Timings {
		fmt.Printf("e2e: cluster start: %-60s %s\n", t.Phase, t.Duration.Round(time.Millisecond))
	}
	bin, err := testenv.Binary("vault")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	t := time.Now()
	if vault, err = cl.StartVault(ctx, bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start vault:", err)
		return 1
	}
	fmt.Printf("e2e: vault ready at %s (as vault.vault.svc:8200 in the cluster) in %s\n", vault.Addr, time.Since(t).Round(time.Millisecond))
	t = time.Now()
	product = installProduct(ctx, root)
	if product.installed {
		fmt.Printf("e2e: product installed from the chart in %s\n", time.Since(t).Round(time.Millisecond))
	} else {
		fmt.Printf("e2e: product NOT installed: %s\n", product.reason)
	}
	return m.Run()
}

// buildImages builds the pause and test application images and the
// product's images.
func buildImages(root string) ([]*image.Image, error) {
	dir, err := os.MkdirTemp("", "ssi-e2e-build-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	imgs, err := cluster.TestImages(root, dir)
	if err != nil {
		return nil, err
	}
	prod, err := productImages(root, dir)
	if err != nil {
		return nil, err
	}
	return append(imgs, prod...), nil
}
