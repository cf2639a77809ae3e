package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ssinjector/ssi/internal/mountinfo"
)

// Cleanup removes everything a run of the harness with work directory
// workDir may have left behind, whether it stopped cleanly or crashed:
// containers (through runc's state in the work directory), the processes it
// recorded, containerd's shims, kube-proxy's iptables chains, mounts under
// the work directory, unused CNI network namespaces, the bridge and its
// veths, the kubelet's cgroups, and sysctls it changed. It is idempotent
// and safe to run when nothing is left.
func Cleanup(workDir, binDir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var errs []error
	if _, err := os.Stat(workDir); errors.Is(err, os.ErrNotExist) {
		// Nothing recorded: still remove what only a harness kubelet and
		// kube-proxy create (chains, the bridge, kubepods cgroups).
		if hasKubeChains() {
			removeKubeChains(logf)
		}
		removeUnusedNetns(logf)
		removeCgroups(logf)
		removeCNICache(logf)
		_ = os.Remove("/var/lib/cni/results")
		_ = os.Remove("/var/lib/cni")
		return cleanupNetwork(logf)
	}

	// Containers: runc keeps their state under the root the containerd
	// config gives it, inside the work directory.
	runcRoot := filepath.Join(workDir, "runc", "k8s.io")
	if ids := runcList(runcRoot); len(ids) > 0 {
		logf("killing %d leftover containers", len(ids))
		for _, id := range ids {
			_ = exec.Command("runc", "--root", runcRoot, "kill", id, "KILL").Run() //nolint:gosec // runc with ids it listed itself
		}
		time.Sleep(500 * time.Millisecond)
		for _, id := range ids {
			_ = exec.Command("runc", "--root", runcRoot, "delete", "--force", id).Run() //nolint:gosec // same
		}
	}

	// Processes this harness started, then containerd's shims (they
	// reparent themselves, so they are found by their -address argument).
	if err := killRecorded(filepath.Join(workDir, "pids"), logf); err != nil {
		errs = append(errs, err)
	}
	for _, pid := range processesWithArg(filepath.Join(workDir, "containerd", "containerd.sock")) {
		logf("killing leftover containerd shim (pid %d)", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}

	// kube-proxy's chains, then what is left of the kubelet's
	// (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT).
	if kp := filepath.Join(binDir, "kube-proxy"); fileExists(kp) && hasKubeChains() {
		logf("removing kube-proxy iptables chains")
		if out, err := exec.Command(kp, "--cleanup").CombinedOutput(); err != nil { //nolint:gosec // kube-proxy from bin/
			logf("kube-proxy --cleanup: %v: %s", err, lastLines(string(out), 5))
		}
	}
	removeKubeChains(logf)

	// Mounts under the work directory (kubelet's pod volumes, tmpfs,
	// overlay roots, the rshared bind of the kubelet root), deepest first.
	if err := unmountUnder(workDir, logf); err != nil {
		errs = append(errs, err)
	}
	removeUnusedNetns(logf)
	if err := cleanupNetwork(logf); err != nil {
		errs = append(errs, err)
	}
	removeCgroups(logf)
	restoreSysctls(filepath.Join(workDir, "sysctl"), logf)
	removeContainerLogLinks(workDir)
	// libcni's result cache: entries of this network (and the loopback
	// entries of the same sandboxes) outlive killed sandboxes.
	removeCNICache(logf)
	_ = os.Remove("/var/lib/cni/results")
	_ = os.Remove("/var/lib/cni")
	_ = os.Remove("/var/log/containers")

	if err := os.RemoveAll(workDir); err != nil {
		// A mount we could not detach keeps files busy; say which.
		errs = append(errs, fmt.Errorf("remove %s: %w", workDir, err))
	}
	return errors.Join(errs...)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func runcList(root string) []string {
	if !fileExists(root) {
		return nil
	}
	out, err := exec.Command("runc", "--root", root, "list", "-q").Output() //nolint:gosec // runc on the harness's state
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

func hasKubeChains() bool {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"nat", "filter", "mangle"} {
			out, err := exec.Command(cmd, "-w", "5", "-t", table, "-S").Output() //nolint:gosec // iptables or ip6tables
			if err == nil && strings.Contains(string(out), "KUBE-") {
				return true
			}
		}
	}
	return false
}

// removeKubeChains deletes the jumps from built-in chains to KUBE-* chains
// and then the KUBE-* chains themselves, in iptables and ip6tables. Only
// the kubelet and kube-proxy create chains with that prefix.
func removeKubeChains(logf func(string, ...any)) {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(cmd, "-w", "5", "-t", table, "-S").Output() //nolint:gosec // same
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) >= 4 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, " -j KUBE-"):
					args := append([]string{"-w", "5", "-t", table, "-D"}, f[1:]...)
					if err := exec.Command(cmd, args...).Run(); err != nil { //nolint:gosec // deletes a rule it listed
						logf("%s -t %s %s: %v", cmd, table, strings.Join(args[4:], " "), err)
					}
				}
			}
			for _, c := range chains {
				_ = exec.Command(cmd, "-w", "5", "-t", table, "-F", c).Run() //nolint:gosec // a KUBE- chain it listed
			}
			for _, c := range chains {
				if err := exec.Command(cmd, "-w", "5", "-t", table, "-X", c).Run(); err != nil { //nolint:gosec // same
					logf("%s -t %s -X %s: %v", cmd, table, c, err)
				}
			}
			if len(chains) > 0 {
				logf("removed %d KUBE-* chains from %s table %s", len(chains), cmd, table)
			}
		}
	}
}

func unmountUnder(dir string, logf func(string, ...any)) error {
	for attempt := 0; attempt < 5; attempt++ {
		mps, err := mountinfo.Under(mountinfo.Self, dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
		for _, mp := range mps {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				logf("unmount %s: %v", mp, err)
			}
		}
	}
	mps, _ := mountinfo.Under(mountinfo.Self, dir)
	if len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %v", dir, mps)
	}
	return nil
}

// removeUnusedNetns removes CNI network namespaces (containerd names them
// cni-<uuid> under /run/netns) that no process is in any more: a
// namespace nobody uses is what a killed sandbox leaves.
func removeUnusedNetns(logf func(string, ...any)) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	used := map[uint64]bool{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", p.Name(), "ns", "net"), &st) == nil {
			used[st.Ino] = true
		}
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		p := filepath.Join("/run/netns", e.Name())
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil && used[st.Ino] {
			continue
		}
		logf("removing unused network namespace %s", e.Name())
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
		_ = os.Remove(p)
	}
}

// cleanupNetwork deletes the veths attached to the harness's bridge and
// the bridge itself.
func cleanupNetwork(logf func(string, ...any)) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", BridgeName)); err != nil {
		return nil
	}
	ifs, _ := os.ReadDir(filepath.Join("/sys/class/net", BridgeName, "brif"))
	for _, i := range ifs {
		logf("deleting veth %s", i.Name())
		_ = exec.Command("ip", "link", "delete", i.Name()).Run() //nolint:gosec // a veth of the harness's bridge
	}
	logf("deleting bridge %s", BridgeName)
	if out, err := exec.Command("ip", "link", "delete", BridgeName).CombinedOutput(); err != nil {
		return fmt.Errorf("delete bridge %s: %w: %s", BridgeName, err, out)
	}
	return nil
}

// removeCgroups removes the kubelet's kubepods hierarchy (empty once every
// container is gone), deepest first, in every cgroup v1 controller.
func removeCgroups(logf func(string, ...any)) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	if fileExists("/sys/fs/cgroup/kubepods.slice") || fileExists("/sys/fs/cgroup/kubepods") {
		roots = append(roots, "/sys/fs/cgroup/kubepods")
	}
	removed := 0
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if syscall.Rmdir(d) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		logf("removed %d kubelet cgroups", removed)
	}
}

// setSysctl sets a sysctl and records its previous value in file, once, so
// that cleanup can restore it.
func setSysctl(file, key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	old, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(old)) == value {
		return nil
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(f, "%s=%s\n", key, strings.TrimSpace(string(old)))
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(value), 0o644)
}

func restoreSysctls(file string, logf func(string, ...any)) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	seen := map[string]bool{}
	// The first recorded value of a key is the original one.
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		logf("restoring sysctl %s=%s", k, v)
		_ = os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")), []byte(v), 0o644) //nolint:gosec // sysctls the harness recorded itself
	}
	_ = os.Remove(file)
}

// removeContainerLogLinks removes the kubelet's /var/log/containers links
// that point into the work directory.
func removeContainerLogLinks(workDir string) {
	entries, _ := os.ReadDir("/var/log/containers")
	for _, e := range entries {
		p := filepath.Join("/var/log/containers", e.Name())
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, workDir+"/") {
			_ = os.Remove(p)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeCNICache removes libcni's cached results for the harness's network
// ("ssi-e2e-<sandbox>-eth0") and the loopback results of the same sandboxes.
func removeCNICache(logf func(string, ...any)) {
	const dir = "/var/lib/cni/results"
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "ssi-e2e-")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "-")
		_ = os.Remove(filepath.Join(dir, e.Name()))
		_ = os.Remove(filepath.Join(dir, "cni-loopback-"+id+"-lo"))
		n++
	}
	if n > 0 {
		logf("removed %d cached CNI results", n)
	}
}
