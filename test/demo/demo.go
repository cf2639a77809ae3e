package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/chart"
	"github.com/ssinjector/ssi/internal/testing/child"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// Options of the demo.
type Options struct {
	// WebhookBin and AgentBin are the built binaries (make build).
	WebhookBin, AgentBin string
	// Out receives the progress output.
	Out io.Writer
	// Verbose also prints the webhook's and the agent's logs.
	Verbose bool
	// RotationInterval is the webhook's --rotation-interval: short, so the
	// rotation shows within seconds.
	RotationInterval time.Duration
}

// DefaultOptions are those of `make demo`.
func DefaultOptions() Options {
	bin := testenv.BinDir()
	return Options{
		WebhookBin:       filepath.Join(bin, "ssi-webhook"),
		AgentBin:         filepath.Join(bin, "ssi-agent"),
		RotationInterval: 5 * time.Second,
	}
}

// Result is what the demo saw, for its test.
type Result struct {
	// Pod is the pod as stored after admission.
	Pod *corev1.Pod
	// Before and After are the volume's user-visible files before and after
	// the rotation, name → content.
	Before, After map[string]string
	// Processes are the children started, by name → pid; all have exited
	// when Run returns.
	Processes map[string]int
	// Admission and FirstFetch are the pod creation call (webhook
	// included) and the time from agent start to files written; Rotation
	// the time from the write in Vault to the rotated file.
	Admission, FirstFetch, Rotation time.Duration
	// Denial is the API server's refusal of a pod whose class is absent.
	Denial string
}

// Seed guide inputs (test/testdata/seed).
const (
	seedClassFile      = "vault-secret-provider.yaml"
	seedDeploymentFile = "deployment-with-secrets.yaml"
	// The seed Deployment names the AWS class of the guide; the demo runs
	// Vault, so this is the one substitution in the applied manifests.
	seedClassInDeployment = "aws-secrets"
	installNamespace      = chart.DefaultNamespace
)

// Seed guide secret values (made up; printing them is the point of a demo).
var (
	databasePassword = "s3cr3t-db-password"  //nolint:gosec // a made-up demo value
	apiToken         = "tok-9f2b7c"          //nolint:gosec // a made-up demo value
	rotatedPassword  = "r0tated-db-password" //nolint:gosec // a made-up demo value
)

type demo struct {
	opts  Options
	out   io.Writer
	logs  io.Writer
	step  int
	steps int
	root  string
	res   *Result
	clean cleanups
	// vaultAddr is the local Vault; classVaultAddr the class's vaultAddress.
	vaultAddr, classVaultAddr string
}

func (d *demo) stepf(format string, args ...any) time.Time {
	d.step++
	_, _ = fmt.Fprintf(d.out, "\n==> [%d/%d] %s\n", d.step, d.steps, fmt.Sprintf(format, args...))
	return time.Now()
}

func (d *demo) infof(format string, args ...any) {
	_, _ = fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// Run runs the demo and stops everything it started before it returns.
func Run(ctx context.Context, opts Options) (res *Result, err error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	// The control plane's library logs nothing the demo needs; without a
	// logger it prints a stack trace after 30 s to say so.
	ctrllog.SetLogger(logr.Discard())
	if opts.RotationInterval <= 0 {
		opts.RotationInterval = DefaultOptions().RotationInterval
	}
	d := &demo{opts: opts, out: opts.Out, logs: io.Discard, steps: 10, res: &Result{Processes: map[string]int{}}}
	if opts.Verbose {
		d.logs = opts.Out
	}
	for _, b := range []string{opts.WebhookBin, opts.AgentBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s: run `make build` first: %w", b, err)
		}
	}
	if d.root, err = os.MkdirTemp("", "ssi-demo-"); err != nil {
		return nil, err
	}
	d.clean.add(func() error { return os.RemoveAll(d.root) })
	defer func() {
		_, _ = fmt.Fprintf(d.out, "\n==> stopping everything the demo started\n")
		if cerr := d.clean.run(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if ctx.Err() != nil && err != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		if err == nil {
			_, _ = fmt.Fprintf(d.out, "    done: all processes stopped, %s removed\n", d.root)
		}
	}()
	err = d.run(ctx)
	return d.res, err
}

func (d *demo) run(ctx context.Context) error {
	repo := testenv.RepoRoot()

	// 1. Control plane.
	t0 := d.stepf("control plane: kube-apiserver and etcd (internal/testing/testenv), with the CRDs of manifests/crds")
	env, err := testenv.StartEnv(testenv.Options{
		// Run the ServiceAccount admission plugin, as every cluster does.
		APIServerArgs: map[string]string{"disable-admission-plugins": "DefaultStorageClass"},
	})
	if err != nil {
		return err
	}
	d.clean.add(env.Stop)
	d.infof("kube-apiserver at %s, ready in %s", env.Config.Host, since(t0))
	c := env.Client

	// 2. Vault.
	t0 = d.stepf("Vault dev server, set up as the seed guide does (kubernetes auth, role app-role, policy app-policy, two secrets)")
	vaultBin, err := testenv.Binary("vault")
	if err != nil {
		return err
	}
	v, err := startVault(ctx, vaultBin, d.logs)
	if err != nil {
		return err
	}
	d.res.Processes["vault"] = v.proc.Pid()
	d.clean.add(func() error { return v.proc.Stop(syscall.SIGTERM, 10*time.Second) })
	d.vaultAddr = v.addr
	reviewer, err := d.reviewerToken(ctx, env)
	if err != nil {
		return err
	}
	host := env.Config.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if err := v.configure(ctx, kubernetesAuth{Host: host, CA: string(env.Config.CAData), ReviewerJWT: reviewer}, map[string]map[string]any{
		"myapp/database": {"password": databasePassword},
		"myapp/api":      {"token": apiToken},
	}); err != nil {
		return err
	}
	d.infof("vault at %s (pid %d); secret/myapp/database and secret/myapp/api written, ready in %s", v.addr, v.proc.Pid(), since(t0))

	// 3. The app's namespace.
	d.stepf("namespace production (label secrets-store-injector.io/injection=enabled), service account app-service-account")
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "production", Labels: map[string]string{"secrets-store-injector.io/injection": "enabled"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "production", Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "production", Name: "app-service-account"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}

	// 4. The webhook.
	t0 = d.stepf("ssi-webhook: its RBAC and MutatingWebhookConfiguration from manifests/%s, run as its service account", chart.ManifestsFile)
	if err := d.startWebhook(ctx, env, repo); err != nil {
		return err
	}
	d.infof("webhook ready in %s", since(t0))

	// 5. Seed manifests.
	d.stepf("seed guide: apply %s (unchanged) and %s (secretProviderClass %q → %q)", seedClassFile, seedDeploymentFile, seedClassInDeployment, "vault-secrets")
	seed := filepath.Join(repo, "test", "testdata", "seed")
	var class ssiv1.SecretProviderClass
	if err := readYAML(filepath.Join(seed, seedClassFile), &class); err != nil {
		return err
	}
	if err := c.Create(ctx, &class); err != nil {
		return fmt.Errorf("apply %s: %w", seedClassFile, err)
	}
	d.classVaultAddr = class.Spec.Parameters["vaultAddress"]
	var dep appsv1.Deployment
	if err := readYAML(filepath.Join(seed, seedDeploymentFile), &dep); err != nil {
		return err
	}
	orig := dep.DeepCopy()
	replaced := 0
	for i := range dep.Spec.Template.Spec.Volumes {
		if csi := dep.Spec.Template.Spec.Volumes[i].CSI; csi != nil && csi.VolumeAttributes["secretProviderClass"] == seedClassInDeployment {
			csi.VolumeAttributes["secretProviderClass"] = class.Name
			replaced++
		}
	}
	if replaced != 1 {
		return fmt.Errorf("%s: expected one volume of class %s, found %d", seedDeploymentFile, seedClassInDeployment, replaced)
	}
	if err := c.Create(ctx, &dep); err != nil {
		return fmt.Errorf("apply %s: %w", seedDeploymentFile, err)
	}
	d.infof("SecretProviderClass %s/%s (provider %s, vaultAddress %s) and Deployment %s/%s created",
		class.Namespace, class.Name, class.Spec.Provider, class.Spec.Parameters["vaultAddress"], dep.Namespace, dep.Name)

	// 6. The pod.
	d.stepf("create the Deployment's pod (no controller-manager here, so the demo does what the ReplicaSet controller would)")
	podOf := func(dep *appsv1.Deployment) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: dep.Namespace, GenerateName: dep.Name + "-",
				Labels: dep.Spec.Template.Labels, Annotations: dep.Spec.Template.Annotations,
			},
			Spec: dep.Spec.Template.Spec,
		}
	}
	// First as the guide wrote it: its class does not exist here.
	err = c.Create(ctx, podOf(orig))
	if err == nil || !strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("a pod of the unmodified Deployment (class %s, absent) was not refused: %w", seedClassInDeployment, err)
	}
	d.res.Denial = err.Error()
	d.infof("with the guide's class name %q (absent here) the pod is refused:\n      %s", seedClassInDeployment, err)
	t0 = time.Now()
	pod := podOf(&dep)
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("create pod: %w", err)
	}
	d.res.Admission = time.Since(t0)
	d.res.Pod = pod.DeepCopy()
	if pod.Annotations["secrets-store-injector.io/status"] != "injected" {
		return fmt.Errorf("pod %s/%s was not rewritten (annotations %v)", pod.Namespace, pod.Name, pod.Annotations)
	}
	d.infof("pod %s/%s created and rewritten in %s; as stored:", pod.Namespace, pod.Name, d.res.Admission.Round(time.Millisecond))
	printed := pod.DeepCopy()
	printed.APIVersion, printed.Kind = "v1", "Pod"
	printed.ManagedFields = nil
	printed.Status = corev1.PodStatus{}
	y, err := yaml.Marshal(printed)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(d.out, "\n%s\n", indent(string(y), "    | "))

	// 7. The agent.
	t0 = d.stepf("run ssi-agent as the pod's agent container would")
	agent, volumes, err := d.startAgent(ctx, env, pod)
	if err != nil {
		return err
	}
	d.res.FirstFetch = time.Since(t0)
	d.infof("agent (pid %d) ready: first fetch written in %s", agent.Pid(), d.res.FirstFetch.Round(time.Millisecond))

	// 8. The files.
	d.stepf("the secrets volume as the app container sees it at /mnt/secrets")
	vol := volumes["secrets-store"]
	if vol == "" {
		return fmt.Errorf("the agent configuration has no volume secrets-store (volumes %v)", volumes)
	}
	if d.res.Before, err = d.showFiles(vol); err != nil {
		return err
	}

	// 9. Rotation.
	t0 = d.stepf("rotation: vault kv put secret/myapp/database password=%s (agent rotation interval %s)", rotatedPassword, d.opts.RotationInterval)
	if err := v.put(ctx, "myapp/database", map[string]any{"password": rotatedPassword}); err != nil {
		return err
	}
	if err := waitFile(ctx, filepath.Join(vol, "db-password"), rotatedPassword, agent, 3*d.opts.RotationInterval+30*time.Second); err != nil {
		return err
	}
	d.res.Rotation = time.Since(t0)
	d.infof("db-password changed %s after the write in Vault", d.res.Rotation.Round(time.Millisecond))
	if d.res.After, err = d.showFiles(vol); err != nil {
		return err
	}

	// 10. Stop the agent as kubelet would (SIGTERM).
	d.stepf("stop the agent (SIGTERM, as kubelet does when the pod ends)")
	if err := agent.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		return err
	}
	if _, err := agent.Exited(); err != nil {
		return fmt.Errorf("agent exited with %w on SIGTERM, want 0", err)
	}
	d.infof("agent exited 0")
	return nil
}

// reviewerToken is the token Vault's Kubernetes auth uses to call
// TokenReview: a service account bound to system:auth-delegator.
func (d *demo) reviewerToken(ctx context.Context, env *testenv.Env) (string, error) {
	c := env.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "vault", Name: "vault"}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-token-review"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "vault", Name: "vault"}},
		},
	} {
		if err := c.Create(ctx, o); err != nil {
			return "", fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return env.Token(ctx, "vault", "vault", nil, time.Hour, nil)
}

// startWebhook installs what manifests/secrets-store-injector.yaml says
// about the webhook (namespace, service account, RBAC, the
// MutatingWebhookConfiguration pointed at 127.0.0.1 with the demo's CA) and
// runs the binary with the Deployment's arguments, as that service account.
func (d *demo) startWebhook(ctx context.Context, env *testenv.Env, repo string) error {
	raw, err := os.ReadFile(filepath.Join(repo, "manifests", chart.ManifestsFile))
	if err != nil {
		return err
	}
	objs, err := chart.Split(raw)
	if err != nil {
		return err
	}
	want := map[string]string{"Namespace": installNamespace, "ServiceAccount": "ssi-webhook", "ClusterRole": "ssi-webhook", "ClusterRoleBinding": "ssi-webhook"}
	for _, kind := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		o := chart.Get(objs, kind, want[kind])
		if o == nil {
			return fmt.Errorf("manifests/%s has no %s %s", chart.ManifestsFile, kind, want[kind])
		}
		if err := env.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s %s: %w", kind, o.GetName(), err)
		}
	}
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: "default"}}); err != nil {
		return err
	}
	depObj := chart.Get(objs, "Deployment", "ssi-webhook")
	if depObj == nil {
		return fmt.Errorf("manifests/%s has no Deployment ssi-webhook", chart.ManifestsFile)
	}
	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(depObj.Object, &dep); err != nil {
		return err
	}
	certDir := filepath.Join(d.root, "webhook-tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	ca, err := servingCert(certDir)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	health, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	args := overrideFlags(dep.Spec.Template.Spec.Containers[0].Args, map[string]string{
		"--host":                      "127.0.0.1",
		"--port":                      port,
		"--cert-dir":                  certDir,
		"--metrics-bind-address":      "0",
		"--health-probe-bind-address": health,
		"--failure-policy":            "Fail",
		"--rotation-interval":         d.opts.RotationInterval.String(),
		// The demo rotates faster than a cluster may by default (10s).
		"--min-rotation-interval": d.opts.RotationInterval.String(),
		"--log-format":            "text",
	})
	d.infof("ssi-webhook %s", strings.Join(args, " "))

	// Credentials of the webhook's service account, as in its pod.
	token, err := env.Token(ctx, installNamespace, "ssi-webhook", nil, time.Hour, nil)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(d.root, "webhook.kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["demo"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos["ssi-webhook"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["demo"] = &clientcmdapi.Context{Cluster: "demo", AuthInfo: "ssi-webhook"}
	kc.CurrentContext = "demo"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}
	p, err := start("ssi-webhook", d.logs, environ("KUBECONFIG="+kubeconfig, "POD_NAMESPACE="+installNamespace), d.opts.WebhookBin, args...)
	if err != nil {
		return err
	}
	d.res.Processes["ssi-webhook"] = p.Pid()
	d.clean.add(func() error { return p.Stop(syscall.SIGTERM, 15*time.Second) })
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+health+"/readyz", p, time.Minute); err != nil {
		return err
	}
	mwcObj := chart.Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector")
	if mwcObj == nil {
		return fmt.Errorf("manifests/%s has no MutatingWebhookConfiguration", chart.ManifestsFile)
	}
	mwc := mwcObj.DeepCopy()
	mwc.SetAnnotations(nil) // cert-manager's CA injection: the demo sets the caBundle itself
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	for i := range hooks {
		h := hooks[i].(map[string]any)
		path, _, _ := unstructured.NestedString(h, "clientConfig", "service", "path")
		h["clientConfig"] = map[string]any{"url": "https://" + addr + path, "caBundle": base64.StdEncoding.EncodeToString(ca)}
		h["failurePolicy"] = "Fail" // a demo that silently skipped the webhook would prove nothing
	}
	if err := unstructured.SetNestedSlice(mwc.Object, hooks, "webhooks"); err != nil {
		return err
	}
	if err := env.Client.Create(ctx, mwc); err != nil {
		return fmt.Errorf("create MutatingWebhookConfiguration: %w", err)
	}
	d.clean.add(func() error {
		// Remove it first, so that nothing else is sent to a stopped webhook.
		return client.IgnoreNotFound(env.Client.Delete(context.Background(), mwc))
	})
	d.infof("pid %d, https://%s, MutatingWebhookConfiguration %s (failurePolicy Fail for the demo)", p.Pid(), addr, mwc.GetName())
	return nil
}

// startAgent runs ssi-agent with the environment and arguments of the
// pod's agent container: downward-API values from the stored pod, a
// TokenRequest token (bound to the pod) for every projected token, and the
// container's paths mapped under the demo's directory. It returns once the
// agent reports ready, with the volume directories by name.
func (d *demo) startAgent(ctx context.Context, env *testenv.Env, pod *corev1.Pod) (*child.Process, map[string]string, error) {
	var ctr *corev1.Container
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			for _, e := range list[i].Env {
				if e.Name == agentconfig.EnvConfig && ctr == nil {
					ctr = &list[i]
				}
			}
		}
	}
	if ctr == nil {
		return nil, nil, errors.New("the rewritten pod has no container with " + agentconfig.EnvConfig)
	}
	kind := "container"
	if ctr.RestartPolicy != nil && *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		kind = "native sidecar (init container, restartPolicy Always)"
	}
	d.infof("agent container %q: %s, image %s, args %v", ctr.Name, kind, ctr.Image, ctr.Args)

	envv := []string{}
	var cfg *agentconfig.Config
	for _, e := range ctr.Env {
		val := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, nil, fmt.Errorf("agent env %s: only fieldRef values are supported by the demo", e.Name)
			}
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				val = pod.Name
			case "metadata.namespace":
				val = pod.Namespace
			case "metadata.uid":
				val = string(pod.UID)
			case "spec.serviceAccountName":
				val = pod.Spec.ServiceAccountName
			case "spec.nodeName":
				val = "localhost" // the pod is not scheduled here
			case "status.podIP":
				// The agent's health port binds the pod IP; here the
				// "pod" is this machine's loopback.
				val = "127.0.0.1"
			default:
				return nil, nil, fmt.Errorf("agent env %s: fieldRef %s not known to the demo", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		}
		if e.Name == agentconfig.EnvConfig {
			var err error
			if cfg, err = agentconfig.Decode(val); err != nil {
				return nil, nil, err
			}
			continue
		}
		envv = append(envv, e.Name+"="+val)
	}
	// Volumes: the agent container's mount paths, under the demo directory.
	volumes := map[string]string{}
	for i := range cfg.Volumes {
		dir := filepath.Join(d.root, "pod", "volumes", cfg.Volumes[i].Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		d.infof("volume %s: %s in the container → %s", cfg.Volumes[i].Name, cfg.Volumes[i].Path, dir)
		cfg.Volumes[i].Path = dir
		volumes[cfg.Volumes[i].Name] = dir
	}
	// Tokens: what kubelet would project, minted with TokenRequest.
	expiration := time.Hour
	for i := range cfg.Tokens {
		tok, err := env.Token(ctx, pod.Namespace, pod.Spec.ServiceAccountName, audiences(cfg.Tokens[i].Audience), expiration, pod)
		if err != nil {
			return nil, nil, err
		}
		file := filepath.Join(d.root, "pod", "tokens", fmt.Sprint(i), "token")
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
			return nil, nil, err
		}
		aud := cfg.Tokens[i].Audience
		if aud == "" {
			aud = "(the API server's)"
		}
		d.infof("token for audience %s of %s/%s, bound to the pod: %s → %s", aud, pod.Namespace, pod.Spec.ServiceAccountName, cfg.Tokens[i].Path, file)
		cfg.Tokens[i].Path = file
	}
	health, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	cfg.HealthAddr = health
	enc, err := cfg.Encode()
	if err != nil {
		return nil, nil, err
	}
	envv = append(envv, agentconfig.EnvConfig+"="+enc)

	proxy, err := startVaultProxy(d.classVaultAddr, d.vaultAddr)
	if err != nil {
		return nil, nil, err
	}
	d.clean.add(proxy.close)
	d.infof("vault.vault.svc:8200 (the class's vaultAddress) is reached through VAULT_PROXY_ADDR=http://%s", proxy.addr)
	envv = append(envv, "VAULT_PROXY_ADDR=http://"+proxy.addr)

	termination := filepath.Join(d.root, "pod", "termination-log")
	args := append(append([]string{}, ctr.Args...), "--termination-log="+termination)
	p, err := start("ssi-agent", d.logs, environ(envv...), d.opts.AgentBin, args...)
	if err != nil {
		return nil, nil, err
	}
	d.res.Processes["ssi-agent"] = p.Pid()
	d.clean.add(func() error { return p.Stop(syscall.SIGTERM, 10*time.Second) })
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+health+"/readyz", p, 2*time.Minute); err != nil {
		if msg, rerr := os.ReadFile(termination); rerr == nil && len(msg) > 0 {
			return nil, nil, fmt.Errorf("agent failed; its termination message: %s", msg)
		}
		return nil, nil, err
	}
	return p, volumes, nil
}

func audiences(a string) []string {
	if a == "" {
		return nil
	}
	return []string{a}
}

// showFiles prints the volume like `ls -la` and the content of each
// user-visible file, and returns the contents.
func (d *demo) showFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	var names []string
	for _, e := range entries {
		info, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		line := fmt.Sprintf("%s  %s", info.Mode(), e.Name())
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			line += " -> " + target
		}
		d.infof("%s", line)
		if !strings.HasPrefix(e.Name(), "..") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		files[n] = string(b)
		d.infof("/mnt/secrets/%s: %s", n, b)
	}
	return files, nil
}

// waitFile waits until path holds want.
func waitFile(ctx context.Context, path, want string, agent *child.Process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.Equal(b, []byte(want)) {
			return nil
		}
		if done, err := agent.Exited(); done {
			return fmt.Errorf("agent exited (%w) before %s was rotated", err, path)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not rotated within %s", path, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// overrideFlags replaces --name=value flags of args (adding missing ones).
func overrideFlags(args []string, set map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if v, ok := set[name]; ok {
			out = append(out, name+"="+v)
			seen[name] = true
			continue
		}
		out = append(out, a)
	}
	var missing []string
	for name := range set {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		out = append(out, name+"="+set[name])
	}
	return out
}

func readYAML(path string, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
