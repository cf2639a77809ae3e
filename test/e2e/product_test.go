//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/ssinjector/ssi/test/e2e/cluster"
	"github.com/ssinjector/ssi/test/e2e/image"
)

// Product image references: the harness builds them from this tree and
// imports them under these names.
const (
	webhookImage = "ssi-e2e.local/ssi-webhook:e2e"
	agentImage   = "ssi-e2e.local/ssi-agent:e2e"
)

// Installation settings of the suite. Rotation is short so that rotation
// tests take seconds; the seed manifests themselves stay unchanged.
const (
	productNamespace  = "secrets-store-injector"
	webhookService    = "ssi-webhook"
	rotationInterval  = 10 * time.Second
	firstFetchTimeout = 20 * time.Second
	csiDriverName     = "secrets-store.csi.k8s.io"
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

// installProduct installs the webhook and the node shim.
//
// Until the Helm chart (issue 8) lands, the suite installs the product's
// pieces itself, from what their owners generate: the webhook's
// MutatingWebhookConfiguration (manifests/webhook/) and the shim's
// CSIDriver (manifests/csi/) as they are, with a Deployment and a
// DaemonSet written here that run the real images with the real flags.
// Its RBAC is not the product's (both service accounts are bound to
// cluster-admin); the chart's least-privilege RBAC replaces it.
func installProduct(ctx context.Context, root string) productState {
	have := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	switch {
	case !have("internal/webhook"):
		return productState{reason: "the webhook (internal/webhook) is not on main yet"}
	case !have("internal/csi"):
		return productState{reason: "the node shim (internal/csi) is not on main yet"}
	}
	if err := installPieces(ctx, root); err != nil {
		return productState{reason: "install failed: " + err.Error()}
	}
	st := productState{installed: true, agent: true}
	if !have("internal/agent") {
		st.agent, st.agentReason = false, "the in-pod agent (internal/agent, `ssi-agent run`) is not on main yet"
	}
	return st
}

func installPieces(ctx context.Context, root string) error {
	cs := cl.Clientset
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: productNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	for _, sa := range []string{"ssi-webhook", "ssi-csi"} {
		if _, err := cs.CoreV1().ServiceAccounts(productNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "ssi-e2e-" + sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: productNamespace}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	// Webhook: serving certificate from the cluster CA, Deployment,
	// Service, and the generated MutatingWebhookConfiguration.
	svcDNS := webhookService + "." + productNamespace + ".svc"
	crt, key, ca, err := cl.IssueServingCert("webhook", []string{svcDNS, svcDNS + "." + cluster.ClusterDomain})
	if err != nil {
		return err
	}
	tls := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-webhook-tls", Namespace: productNamespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": crt, "tls.key": key},
	}
	if _, err := cs.CoreV1().Secrets(productNamespace).Create(ctx, tls, metav1.CreateOptions{}); err != nil {
		return err
	}
	labels := map[string]string{"app.kubernetes.io/name": "secrets-store-injector", "app.kubernetes.io/component": "webhook"}
	args := []string{"serve",
		"--cert-dir", "/tls",
		"--agent-image", agentImage,
		"--rotation-interval", rotationInterval.String(),
		"--first-fetch-timeout", firstFetchTimeout.String(),
		"--namespace", productNamespace,
		"--log-format", "text",
	}
	if syncWired() {
		// The chart's syncSecret.enabled and rotationPollInterval.
		args = append(args, "--sync-secrets", "--rotation-poll-interval", rotationInterval.String())
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-webhook", Namespace: productNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "ssi-webhook",
					Containers: []corev1.Container{{
						Name: "webhook", Image: webhookImage, ImagePullPolicy: corev1.PullIfNotPresent,
						Args:           args,
						Ports:          []corev1.ContainerPort{{Name: "https", ContainerPort: 9443}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8081)}}, PeriodSeconds: 1},
						VolumeMounts:   []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true}},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "ssi-webhook-tls"}}}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(productNamespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: webhookService, Namespace: productNamespace},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromString("https")}},
		},
	}
	if _, err := cs.CoreV1().Services(productNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	mwcFile := filepath.Join(root, "manifests", "webhook", "mutatingwebhookconfiguration.yaml")
	data, err := os.ReadFile(mwcFile)
	if err != nil {
		return fmt.Errorf("the webhook's generated configuration: %w", err)
	}
	objs, err := decodeYAML(data)
	if err != nil || len(objs) != 1 {
		return fmt.Errorf("%s: want one object: %v", mwcFile, err)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &mwc); err != nil {
		return err
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.CABundle = ca
		if s := mwc.Webhooks[i].ClientConfig.Service; s == nil || s.Namespace != productNamespace || s.Name != webhookService {
			return fmt.Errorf("%s: webhook %s does not point at %s/%s", mwcFile, mwc.Webhooks[i].Name, productNamespace, webhookService)
		}
	}

	// Node shim: the generated CSIDriver and a privileged DaemonSet with
	// the kubelet's root directory (bidirectional propagation, so that
	// its mounts reach the kubelet and the pods).
	csiDriver := filepath.Join(root, "manifests", "csi", "csidriver.yaml")
	if _, err := os.Stat(csiDriver); err != nil {
		csiDriver = filepath.Join(root, "manifests", "csidriver.yaml")
	}
	if err := applyFile(ctx, csiDriver); err != nil {
		return fmt.Errorf("CSIDriver: %w", err)
	}
	kroot := cl.KubeletRootDir
	sock := filepath.Join(kroot, "plugins", "csi-secrets-store", "csi.sock")
	csiLabels := map[string]string{"app.kubernetes.io/name": "secrets-store-injector", "app.kubernetes.io/component": "csi"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-csi", Namespace: productNamespace, Labels: csiLabels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: csiLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: csiLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "ssi-csi",
					Containers: []corev1.Container{{
						Name: "csi", Image: agentImage, ImagePullPolicy: corev1.PullIfNotPresent,
						Args: []string{"csi",
							"--endpoint", "unix://" + sock,
							"--kubelet-root-dir", kroot,
							"--rotation-poll-interval", rotationInterval.String(),
						},
						Env: []corev1.EnvVar{{Name: "SSI_NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
						SecurityContext: &corev1.SecurityContext{
							Privileged: ptr.To(true), RunAsUser: ptr.To(int64(0)),
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "kubelet", MountPath: kroot, MountPropagation: ptr.To(corev1.MountPropagationBidirectional)}},
					}},
					Volumes: []corev1.Volume{{Name: "kubelet", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: kroot, Type: ptr.To(corev1.HostPathDirectory)}}}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().DaemonSets(productNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		return err
	}

	// Ready: the webhook has a ready endpoint (only then is the
	// configuration installed, so no pod is admitted unrewritten by a
	// webhook that is still starting), and kubelet registered the shim.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(productNamespace).Get(ctx, "ssi-webhook", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas >= 1, nil
	}); err != nil {
		return fmt.Errorf("webhook Deployment not ready: %w\n%s", err, describeSelector(productNamespace, labels))
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := cs.StorageV1().CSINodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == csiDriverName }), nil
	}); err != nil {
		return fmt.Errorf("kubelet did not register the node shim %s: %w\n%s", csiDriverName, err, describeSelector(productNamespace, csiLabels))
	}
	return nil
}

// describeSelector describes the pods of a selector, for install errors.
func describeSelector(ns string, labels map[string]string) string {
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels})
	pods, err := cl.Clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return err.Error()
	}
	var s string
	for _, p := range pods.Items {
		s += describe(ns, p.Name)
	}
	return s
}

// requireProduct skips a test that needs the product when it could not be
// installed, saying why.
func requireProduct(t interface {
	Helper()
	Skipf(string, ...any)
}) {
	t.Helper()
	if !product.installed {
		t.Skipf("product not installed: %s", product.reason)
	}
}

// requireAgent skips a test that needs pods rewritten with a working
// in-pod agent when the agent is not on main yet.
func requireAgent(t interface {
	Helper()
	Skipf(string, ...any)
}) {
	t.Helper()
	requireProduct(t)
	if !product.agent {
		t.Skipf("injected pods need the agent: %s", product.agentReason)
	}
}
