// Package cluster brings up a real single-node Kubernetes cluster on this
// machine for the end-to-end suite: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy built from
// the pinned Kubernetes module, containerd and runc from the distribution,
// a bridge CNI network, a DNS responder for Service names, and a read-only
// registry for images built here. All state lives under one work directory;
// Stop (and Cleanup, for a run that crashed) removes the processes, mounts,
// network devices, iptables chains and cgroups it created. Component logs
// are kept in a log directory.
//
// Everything listens on the bridge's address (NodeIP), so test traffic
// stays on this machine: the host reaches pods over the bridge, pods reach
// the API server through the kubernetes Service (kube-proxy), and the API
// server reaches webhook Services through their endpoints.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ssinjector/ssi/internal/testing/child"
	"github.com/ssinjector/ssi/test/e2e/dns"
	"github.com/ssinjector/ssi/test/e2e/image"
)

// Network layout. The pod network is a /24 on a bridge the harness owns;
// the bridge's address is the node's address, where every component and
// host-side service (Vault, DNS, registry) listens.
const (
	BridgeName    = "ssie2e0"
	PodCIDR       = "10.213.0.0/24"
	NodeIP        = "10.213.0.1"
	ServiceCIDR   = "10.0.0.0/24"
	ClusterDomain = "cluster.local"
	NodeName      = "ssi-e2e"
	apiPort       = 6443
	etcdPort      = 2379
	registryPort  = 5000
)

// DefaultWorkDir is where the harness keeps all state; fixed, so that the
// next run finds what a crashed run left.
const DefaultWorkDir = "/tmp/ssi-e2e"

// Config tunes Start.
type Config struct {
	// BinDir holds kube-apiserver, etcd, kubelet, kube-controller-manager,
	// kube-scheduler and kube-proxy.
	BinDir string
	// WorkDir holds all state (default DefaultWorkDir).
	WorkDir string
	// LogDir receives one log per component.
	LogDir string
	// Images are imported into containerd and served by the registry.
	Images []*image.Image
	// PauseImage is the sandbox image's reference (one of Images).
	PauseImage string
	// Logf reports progress; nil uses the standard logger.
	Logf func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	cfg        Config
	procs      *procs
	pki        *pki
	f          files
	dns        *dns.Server
	registry   *http.Server
	Kubeconfig string
	// RESTConfig is an admin (system:masters) client configuration.
	RESTConfig *rest.Config
	Clientset  *kubernetes.Clientset
	// KubeletRootDir is the kubelet's --root-dir (the chart's
	// linux.kubeletRootDir).
	KubeletRootDir string
	// Timings of start-up phases.
	Timings []Timing
}

// Timing is the duration of one start-up phase.
type Timing struct {
	Phase    string
	Duration time.Duration
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (c *Cluster) path(p ...string) string {
	return filepath.Join(append([]string{c.cfg.WorkDir}, p...)...)
}

// Start cleans up leftovers of an earlier run, then brings the cluster up
// and waits until the node is Ready. On error everything already started is
// stopped again.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.WorkDir == "" {
		cfg.WorkDir = DefaultWorkDir
	}
	if cfg.LogDir == "" {
		return nil, errors.New("cluster: LogDir is required")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		if !fileExists(filepath.Join(cfg.BinDir, b)) {
			return nil, fmt.Errorf("cluster: %s not found in %s: run `make e2e` (it builds the node binaries)", b, cfg.BinDir)
		}
	}
	for _, b := range []string{"containerd", "runc", "ctr", "iptables", "conntrack", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("cluster: %s not installed (apt-get install containerd runc containernetworking-plugins conntrack iptables iproute2): %w", b, err)
		}
	}
	if !fileExists("/usr/lib/cni/bridge") {
		return nil, errors.New("cluster: /usr/lib/cni/bridge not found (apt-get install containernetworking-plugins)")
	}
	c := &Cluster{cfg: cfg}
	if err := Cleanup(cfg.WorkDir, cfg.BinDir, c.logf); err != nil {
		return nil, fmt.Errorf("cluster: clean up an earlier run: %w", err)
	}
	for _, d := range []string{cfg.WorkDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c.procs = &procs{pidFile: c.path("pids"), logDir: cfg.LogDir}
	defer func() {
		if err != nil {
			c.logf("cluster start failed: %v; stopping what was started (logs in %s)", err, cfg.LogDir)
			_ = c.Stop()
		}
	}()
	phase := func(name string, start time.Time) {
		c.Timings = append(c.Timings, Timing{name, time.Since(start)})
	}

	t0 := time.Now()
	if err := c.setupNetwork(); err != nil {
		return nil, err
	}
	if err := c.writePKI(); err != nil {
		return nil, err
	}
	phase("network and certificates", t0)

	t := time.Now()
	if err := c.startRegistry(); err != nil {
		return nil, err
	}
	if err := c.startContainerd(ctx); err != nil {
		return nil, err
	}
	if err := c.importImages(ctx); err != nil {
		return nil, err
	}
	phase("containerd and image import", t)

	t = time.Now()
	if err := c.startControlPlane(ctx); err != nil {
		return nil, err
	}
	phase("etcd and kube-apiserver", t)

	t = time.Now()
	if err := c.startDNS(); err != nil {
		return nil, err
	}
	if err := c.startNode(ctx); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	phase("node components to node Ready and default service account", t)
	c.Timings = append(c.Timings, Timing{"total", time.Since(t0)})
	return c, nil
}

func (c *Cluster) setupNetwork() error {
	if err := os.WriteFile(c.path("sysctl"), nil, 0o644); err != nil {
		return err
	}
	// Pod to Service to pod on the same bridge is routed back out of the
	// bridge after DNAT, which needs forwarding; bridged replies must pass
	// iptables for the reverse NAT.
	for k, v := range map[string]string{
		"net.ipv4.ip_forward":                 "1",
		"net.bridge.bridge-nf-call-iptables":  "1",
		"net.bridge.bridge-nf-call-ip6tables": "1",
	} {
		if err := setSysctl(c.path("sysctl"), k, v); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	// The bridge exists before the first pod so that host-side services
	// can listen on its address from the start; the CNI bridge plugin
	// adopts it.
	for _, args := range [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil { //nolint:gosec // fixed ip commands
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	// A bridge without ports has no carrier, but its address is local, so
	// binding and local connections work at once. Wait for the address to
	// leave the tentative state anyway (IPv4 has none; this just checks).
	return waitFor(context.Background(), 10*time.Second, "bridge address", func() (bool, error) {
		l, err := net.Listen("tcp", NodeIP+":0")
		if err != nil {
			return false, nil
		}
		_ = l.Close()
		return true, nil
	})
}

// files the components use.
type files struct {
	ca, apiCert, apiKey, kubeletClientCert, kubeletClientKey string
	saPub, saKey                                             string
	kubeletCert, kubeletKey                                  string
}

func (c *Cluster) writePKI() error {
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return err
	}
	c.pki = p
	c.f.ca = p.CAFile()
	nodeIP := net.ParseIP(NodeIP)
	if c.f.apiCert, c.f.apiKey, err = p.issue(certSpec{
		name: "apiserver", cn: "kube-apiserver", server: true,
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain, "localhost"},
		ips: []net.IP{nodeIP, net.ParseIP("10.0.0.1"), net.ParseIP("127.0.0.1")},
	}); err != nil {
		return err
	}
	if c.f.kubeletClientCert, c.f.kubeletClientKey, err = p.issue(certSpec{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true}); err != nil {
		return err
	}
	if c.f.kubeletCert, c.f.kubeletKey, err = p.issue(certSpec{name: "kubelet", cn: NodeName, dns: []string{NodeName}, ips: []net.IP{nodeIP}, server: true}); err != nil {
		return err
	}
	if c.f.saPub, c.f.saKey, err = p.serviceAccountKeys(); err != nil {
		return err
	}
	// Client identities, each in its own kubeconfig.
	for _, id := range []struct{ name, cn, org string }{
		{"admin", "ssi-e2e-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kubelet", "system:node:" + NodeName, "system:nodes"},
		{"kube-proxy", "system:kube-proxy", ""},
	} {
		var orgs []string
		if id.org != "" {
			orgs = []string{id.org}
		}
		cert, key, err := p.issue(certSpec{name: id.name + "-client", cn: id.cn, orgs: orgs, client: true})
		if err != nil {
			return err
		}
		if err := writeKubeconfig(c.path("kubeconfig", id.name), c.f.ca, cert, key); err != nil {
			return err
		}
	}
	c.Kubeconfig = c.path("kubeconfig", "admin")
	return nil
}

func apiURL() string { return fmt.Sprintf("https://%s:%d", NodeIP, apiPort) }

func writeKubeconfig(path, ca, cert, key string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: apiURL(), CertificateAuthority: ca}
	cfg.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// startRegistry serves the images over the registry API on the node
// address, for pulls that must go to a registry.
func (c *Cluster) startRegistry() error {
	reg := &image.Registry{}
	reg.Add(c.cfg.Images...)
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", NodeIP, registryPort))
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	logf, err := os.Create(filepath.Join(c.cfg.LogDir, "registry.log"))
	if err != nil {
		return err
	}
	l := log.New(logf, "", log.LstdFlags|log.Lmicroseconds)
	c.registry = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.Printf("%s %s", r.Method, r.URL.Path)
			reg.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          l,
	}
	go func() { _ = c.registry.Serve(ln) }()
	return nil
}

// registryHosts are the registry host names whose pulls go to the
// harness's registry.
func (c *Cluster) registryHosts() []string {
	seen := map[string]bool{"docker.io": true}
	hosts := []string{"docker.io"}
	for _, img := range c.cfg.Images {
		h, _, ok := strings.Cut(img.Ref, "/")
		if ok && strings.ContainsAny(h, ".:") && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	root := c.path("containerd")
	for _, d := range []string{"root", "state", "opt", "certs.d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	reg := fmt.Sprintf("http://%s:%d", NodeIP, registryPort)
	for _, h := range c.registryHosts() {
		d := filepath.Join(root, "certs.d", h)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", reg, reg)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	// CNI: one bridge network on the pre-created bridge, host-local IPAM
	// with its state in the work directory, and portmap for hostPorts.
	cniDir := c.path("cni", "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "ssi-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, BridgeName, c.path("cni", "ipam"), PodCIDR, NodeIP)
	if err := os.WriteFile(filepath.Join(cniDir, "10-ssi-e2e.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[5]q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[6]q
    restrict_oom_score_adj = true
    disable_apparmor = true
    stream_server_address = "127.0.0.1"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = %[7]q
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = %[8]q
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[9]q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), c.containerdSock(), filepath.Join(root, "ttrpc.sock"),
		filepath.Join(root, "opt"), c.cfg.PauseImage, c.path("runc"), cniDir, filepath.Join(root, "certs.d"))
	cfgFile := filepath.Join(root, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		return err
	}
	bin, _ := exec.LookPath("containerd")
	if _, err := c.procs.start("containerd", bin, []string{"--config", cfgFile}, nil); err != nil {
		return err
	}
	return c.waitProc(ctx, "containerd", 30*time.Second, func() (bool, error) {
		out, err := exec.Command("ctr", "--address", c.containerdSock(), "version").CombinedOutput() //nolint:gosec // ctr on the harness's socket
		return err == nil && strings.Contains(string(out), "Server:"), nil
	})
}

func (c *Cluster) containerdSock() string { return c.path("containerd", "containerd.sock") }

// Ctr runs ctr against the harness's containerd in the k8s.io namespace.
func (c *Cluster) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	a := append([]string{"--address", c.containerdSock(), "--namespace", "k8s.io"}, args...)
	return exec.CommandContext(ctx, "ctr", a...).CombinedOutput() //nolint:gosec // ctr on the harness's socket
}

func (c *Cluster) importImages(ctx context.Context) error {
	if len(c.cfg.Images) == 0 {
		return nil
	}
	archive := c.path("images.tar")
	fh, err := os.Create(archive)
	if err != nil {
		return err
	}
	if err := image.WriteArchive(fh, c.cfg.Images...); err != nil {
		_ = fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	out, err := c.Ctr(ctx, "images", "import", "--no-unpack=false", archive)
	if err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, out)
	}
	// Unpack explicitly for the CRI snapshotter: import unpacks into the
	// default snapshotter, which is overlayfs here too, so this just
	// verifies each image is present.
	list, err := c.Ctr(ctx, "images", "list", "-q")
	if err != nil {
		return fmt.Errorf("ctr images list: %w: %s", err, list)
	}
	for _, img := range c.cfg.Images {
		if !strings.Contains(string(list), img.Ref) {
			return fmt.Errorf("image %s missing after import; have:\n%s\nimport said:\n%s", img.Ref, list, out)
		}
	}
	return os.Remove(archive)
}

func (c *Cluster) startControlPlane(ctx context.Context) error {
	etcdURL := fmt.Sprintf("http://%s:%d", NodeIP, etcdPort)
	if _, err := c.procs.start("etcd", filepath.Join(c.cfg.BinDir, "etcd"), []string{
		"--name", "ssi-e2e",
		"--data-dir", c.path("etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://%s:%d", NodeIP, etcdPort+1),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:%d", NodeIP, etcdPort+1),
		"--initial-cluster", fmt.Sprintf("ssi-e2e=http://%s:%d", NodeIP, etcdPort+1),
		"--listen-metrics-urls", fmt.Sprintf("http://%s:%d", NodeIP, etcdPort+2),
		"--unsafe-no-fsync",
		"--quota-backend-bytes", "2147483648",
	}, nil); err != nil {
		return err
	}
	if err := c.waitProc(ctx, "etcd", 60*time.Second, func() (bool, error) {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200, nil
	}); err != nil {
		return err
	}
	if _, err := c.procs.start("kube-apiserver", filepath.Join(c.cfg.BinDir, "kube-apiserver"), []string{
		"--etcd-servers", etcdURL,
		"--bind-address", NodeIP,
		"--advertise-address", NodeIP,
		"--secure-port", fmt.Sprint(apiPort),
		"--tls-cert-file", c.f.apiCert,
		"--tls-private-key-file", c.f.apiKey,
		"--client-ca-file", c.f.ca,
		"--service-account-key-file", c.f.saPub,
		"--service-account-signing-key-file", c.f.saKey,
		"--service-account-issuer", "https://kubernetes.default.svc." + ClusterDomain,
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate", c.f.kubeletClientCert,
		"--kubelet-client-key", c.f.kubeletClientKey,
		"--kubelet-certificate-authority", c.f.ca,
		"--kubelet-preferred-address-types", "InternalIP",
		"--enable-aggregator-routing=true",
		"--profiling=false",
		"--v=1",
	}, nil); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.RESTConfig = cfg
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	return c.waitProc(ctx, "kube-apiserver", 120*time.Second, func() (bool, error) {
		body, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// startDNS answers Service names on the node address, port 53; kubelet's
// clusterDNS points pods at it.
func (c *Cluster) startDNS() error {
	lf, err := os.Create(filepath.Join(c.cfg.LogDir, "dns.log"))
	if err != nil {
		return err
	}
	cs := c.Clientset
	c.dns = &dns.Server{
		Domain: ClusterDomain,
		Log:    log.New(lf, "", log.LstdFlags|log.Lmicroseconds),
		Lookup: func(ctx context.Context, ns, name string) (netip.Addr, bool, error) {
			svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return netip.Addr{}, false, nil
			}
			if err != nil {
				return netip.Addr{}, false, err
			}
			ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
			if err != nil {
				return netip.Addr{}, false, nil // headless
			}
			return ip, true, nil
		},
	}
	return c.dns.ListenAndServe(NodeIP + ":53")
}

func (c *Cluster) startNode(ctx context.Context) error {
	kc := func(n string) string { return c.path("kubeconfig", n) }
	if _, err := c.procs.start("kube-controller-manager", filepath.Join(c.cfg.BinDir, "kube-controller-manager"), []string{
		"--kubeconfig", kc("controller-manager"),
		"--authentication-kubeconfig", kc("controller-manager"),
		"--authorization-kubeconfig", kc("controller-manager"),
		"--bind-address", NodeIP,
		"--secure-port", "10257",
		"--cert-dir", c.path("controller-manager"),
		"--service-account-private-key-file", c.f.saKey,
		"--root-ca-file", c.f.ca,
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range", ServiceCIDR,
		"--cluster-cidr", PodCIDR,
		"--leader-elect=false",
		"--controllers", "*,-nodeipam",
		"--profiling=false",
		"--v=1",
	}, nil); err != nil {
		return err
	}
	if _, err := c.procs.start("kube-scheduler", filepath.Join(c.cfg.BinDir, "kube-scheduler"), []string{
		"--kubeconfig", kc("scheduler"),
		"--authentication-kubeconfig", kc("scheduler"),
		"--authorization-kubeconfig", kc("scheduler"),
		"--bind-address", NodeIP,
		"--secure-port", "10259",
		"--leader-elect=false",
		"--profiling=false",
		"--v=1",
	}, nil); err != nil {
		return err
	}

	proxyCfg := c.path("kube-proxy.yaml")
	if err := os.WriteFile(proxyCfg, []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
mode: iptables
clusterCIDR: %q
hostnameOverride: %q
bindAddress: %q
healthzBindAddress: "%s:10256"
metricsBindAddress: "%s:10249"
nodePortAddresses: ["%s/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
`, kc("kube-proxy"), PodCIDR, NodeName, NodeIP, NodeIP, NodeIP, NodeIP)), 0o644); err != nil {
		return err
	}
	if _, err := c.procs.start("kube-proxy", filepath.Join(c.cfg.BinDir, "kube-proxy"), []string{"--config", proxyCfg, "--v=1"}, nil); err != nil {
		return err
	}

	c.KubeletRootDir = c.path("kubelet")
	for _, d := range []string{c.KubeletRootDir, c.path("pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Pods get only the cluster DNS; the host's resolvers are not theirs.
	resolv := c.path("resolv.conf")
	if err := os.WriteFile(resolv, []byte("# ssi e2e: no upstream resolvers\n"), 0o644); err != nil {
		return err
	}
	kubeletCfg := c.path("kubelet.yaml")
	if err := os.WriteFile(kubeletCfg, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]q
port: 10250
readOnlyPort: 0
healthzBindAddress: %[1]q
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[2]q
authorization:
  mode: Webhook
tlsCertFile: %[3]q
tlsPrivateKeyFile: %[4]q
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://%[5]s"
clusterDNS: [%[1]q]
clusterDomain: %[6]q
resolvConf: %[7]q
podLogsDir: %[8]q
serializeImagePulls: false
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
maxPods: 60
`, NodeIP, c.f.ca, c.f.kubeletCert, c.f.kubeletKey, c.containerdSock(), ClusterDomain, resolv, c.path("pod-logs"))), 0o644); err != nil {
		return err
	}
	if _, err := c.procs.start("kubelet", filepath.Join(c.cfg.BinDir, "kubelet"), []string{
		"--config", kubeletCfg,
		"--kubeconfig", kc("kubelet"),
		"--root-dir", c.KubeletRootDir,
		"--hostname-override", NodeName,
		"--node-ip", NodeIP,
		"--v=2",
	}, nil); err != nil {
		return err
	}
	return nil
}

// waitReady waits for the node to be Ready and for the default service
// account and root CA config map that every pod needs.
func (c *Cluster) waitReady(ctx context.Context) error {
	if err := c.waitProc(ctx, "kubelet", 180*time.Second, func() (bool, error) {
		n, err := c.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("node %s Ready: %w", NodeName, err)
	}
	return c.waitProc(ctx, "kube-controller-manager", 60*time.Second, func() (bool, error) {
		if _, err := c.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		_, err := c.Clientset.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
}

// waitProc polls cond until it holds, failing early when the named process
// exits.
func (c *Cluster) waitProc(ctx context.Context, name string, timeout time.Duration, cond func() (bool, error)) error {
	p := c.procs.get(name)
	return waitFor(ctx, timeout, name, func() (bool, error) {
		if p != nil {
			if done, err := p.Exited(); done {
				return false, fmt.Errorf("%s exited (%w); last log lines:\n%s", name, err, child.LogTail(filepath.Join(c.cfg.LogDir, name+".log"), 15))
			}
		}
		return cond()
	})
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop deletes the pods (so the kubelet tears their sandboxes and networks
// down), stops every process in reverse order, copies the pod logs into the
// log directory and removes everything else (Cleanup).
func (c *Cluster) Stop() error {
	c.logf("stopping the cluster; logs in %s", c.cfg.LogDir)
	if c.Clientset != nil && c.procs.get("kubelet") != nil {
		c.drain()
	}
	c.procs.stopAll()
	if c.dns != nil {
		_ = c.dns.Close()
	}
	if c.registry != nil {
		_ = c.registry.Close()
	}
	c.copyPodLogs()
	return Cleanup(c.cfg.WorkDir, c.cfg.BinDir, c.logf)
}

// copyPodLogs copies the kubelet's pod log directory into the log
// directory, over an earlier copy: drain copies before it deletes the pods
// (kubelet removes the logs of deleted pods), Stop again at the end for
// what the containers wrote while they stopped.
func (c *Cluster) copyPodLogs() {
	src, dst := c.path("pod-logs"), filepath.Join(c.cfg.LogDir, "pods")
	if !fileExists(src) || os.MkdirAll(dst, 0o755) != nil {
		return
	}
	_ = exec.Command("cp", "-a", src+"/.", dst).Run() //nolint:gosec // copies the harness's own pod logs
}

// drain records the cluster's state for diagnosis, stops the controllers
// (so nothing recreates pods), deletes every pod and waits briefly for the
// kubelet to confirm.
func (c *Cluster) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.dumpState(ctx)
	c.copyPodLogs()
	for _, n := range []string{"kube-controller-manager", "kube-scheduler"} {
		if p := c.procs.get(n); p != nil {
			_ = p.Stop(syscall.SIGTERM, 10*time.Second)
		}
	}
	nss, err := c.Clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	grace := int64(2)
	for _, ns := range nss.Items {
		_ = c.Clientset.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
	}
	_ = waitFor(ctx, 60*time.Second, "pods to be deleted", func() (bool, error) {
		pods, err := c.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, nil
	})
}
