// Command cleanup removes what an end-to-end cluster run left behind (its
// containers, processes, mounts, bridge, iptables chains, cgroups and work
// directory), for after a run that was killed. `make e2e-clean` runs it;
// the suite also runs the same cleanup before it starts.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ssinjector/ssi/internal/testing/testenv"
	"github.com/ssinjector/ssi/test/e2e/cluster"
)

func main() {
	workDir := flag.String("work-dir", cluster.DefaultWorkDir, "the harness's work directory")
	flag.Parse()
	logf := func(format string, args ...any) { fmt.Printf("e2e-clean: "+format+"\n", args...) }
	if err := cluster.Cleanup(*workDir, testenv.BinDir(), logf); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-clean:", err)
		os.Exit(1)
	}
}
