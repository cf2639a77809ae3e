// Command benchshim is the node CSI shim (csi.Run, exactly what
// `ssi-agent csi` runs) with one extra built-in provider, "bench", that
// serves files from memory. The NodePublishVolume benchmark runs it as a
// separate process to measure the shim's latency and resident memory
// without a cloud backend.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/provider"
)

// bench serves parameters "files" (count) and "size" (bytes) as files
// "secret-<i>", version "1", and honours current versions.
type bench struct{}

func (bench) Name() string { return "bench" }

func (bench) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	n, _ := strconv.Atoi(req.Class.Parameters["files"])
	size, _ := strconv.Atoi(req.Class.Parameters["size"])
	out := make([]provider.Object, 0, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("secret-%d", i)
		if req.Current[id] == "1" {
			out = append(out, provider.Object{ID: id, Version: "1", Unchanged: true})
			continue
		}
		out = append(out, provider.Object{ID: id, Version: "1", Files: []atomicdir.File{{Path: id, Data: Content(i, size)}}})
	}
	return out, nil
}

// Content is the deterministic content of file i.
func Content(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte('a' + (i+j)%26)
	}
	return b
}

func main() {
	var o csi.Options
	var providerDir string
	flag.StringVar(&o.Endpoint, "endpoint", "", "CSI endpoint")
	flag.StringVar(&o.NodeID, "nodeid", "bench-node", "node id")
	flag.StringVar(&o.KubeletRootDir, "kubelet-root-dir", "", "kubelet root dir")
	flag.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig")
	flag.StringVar(&providerDir, "provider-dir", "", "plugin socket directory")
	flag.Parse()
	o.RegistrationDir = "-"
	o.EnableRotation = true
	o.ProviderDirs = []string{providerDir}
	o.Providers = provider.NewSet(bench{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := csi.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "benchshim:", err)
		os.Exit(1)
	}
}
