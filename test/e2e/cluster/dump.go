package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// dumpState writes the nodes, pods and events of every namespace into the
// log directory, for diagnosing a failed run after the cluster is gone.
func (c *Cluster) dumpState(ctx context.Context) {
	write := func(name string, obj any) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return
		}
		_ = os.WriteFile(filepath.Join(c.cfg.LogDir, name), b, 0o644)
	}
	if nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		write("nodes.yaml", nodes)
	}
	if pods, err := c.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err == nil {
		write("pods.yaml", pods)
	}
	if evs, err := c.Clientset.CoreV1().Events("").List(ctx, metav1.ListOptions{}); err == nil {
		sort.Slice(evs.Items, func(i, j int) bool {
			return evs.Items[i].LastTimestamp.Before(&evs.Items[j].LastTimestamp)
		})
		var b strings.Builder
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "%s %s/%s %s %s: %s\n", e.LastTimestamp.Format("15:04:05"), e.InvolvedObject.Kind, e.Namespace+"/"+e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
		_ = os.WriteFile(filepath.Join(c.cfg.LogDir, "events.txt"), []byte(b.String()), 0o644)
	}
}
