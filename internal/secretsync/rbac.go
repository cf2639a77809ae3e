package secretsync

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/spc"
)

// Installation defaults of the controller's own Deployment (the chart's
// ssi-sync, in the namespace manifests/ install into).
const (
	DefaultNamespace      = "secrets-store-injector"
	DefaultServiceAccount = "ssi-sync"
	// LeaderElectionID is the Lease the replicas compete for.
	LeaderElectionID = "ssi-sync"
	// MaxTokenSeconds is the longest token lifetime the admission policy
	// lets the controller request.
	MaxTokenSeconds = 3600
)

// RBACOptions name the installation the access objects are for.
type RBACOptions struct {
	// Namespace is the controller's own (its Deployment's, the release's).
	Namespace      string
	ServiceAccount string
	// AllowProtectedNamespaces lists namespaces among Namespace and
	// kube-system that the operator lets the controller write Secrets and
	// mint tokens in; the others of the two are refused by the policy.
	AllowProtectedNamespaces []string
	// APIServerAudiences are the API server's own audiences, which a token
	// bound to no pod must not name; nil means KubernetesAudiences. The
	// API server fills an empty audience list with its own before
	// admission, so the policy knows them only from this list: add the
	// cluster's service-account issuer when it is not among the defaults
	// (GKE's, for one).
	APIServerAudiences []string
}

func (o RBACOptions) withDefaults() RBACOptions {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = DefaultServiceAccount
	}
	if o.APIServerAudiences == nil {
		o.APIServerAudiences = KubernetesAudiences
	}
	return o
}

// ProtectedNamespaces are the namespaces the controller never syncs in:
// its own and kube-system, less those the operator allows. Sorted.
func ProtectedNamespaces(own string, allow []string) []string {
	var out []string
	for _, ns := range []string{own, "kube-system"} {
		if ns != "" && !slices.Contains(allow, ns) && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// celList renders strings as a CEL list literal of single-quoted strings
// (the values are Kubernetes names and Secret types: no quotes inside).
func celList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Username is the controller's user name as the API server sees it.
func (o RBACOptions) Username() string {
	o = o.withDefaults()
	return fmt.Sprintf("system:serviceaccount:%s:%s", o.Namespace, o.ServiceAccount)
}

// RBAC returns the access objects of the sync controller, as
// `make manifests` writes them to manifests/sync/rbac.yaml:
//
//   - ClusterRole and ClusterRoleBinding ssi-sync: watch pods,
//     SecretProviderClasses and service accounts (list, watch); mint
//     service-account tokens (create serviceaccounts/token); keep Secrets
//     (get, list, watch, create, update, delete); record core/v1 events.
//   - Role and RoleBinding ssi-sync-leader-election in the controller's
//     namespace: the Lease of leader election (create; get and update of
//     that one Lease only).
//   - ValidatingAdmissionPolicy and binding ssi-sync-guard, for requests of
//     the controller's user only, expressing what RBAC cannot: nothing in
//     the protected namespaces (ProtectedNamespaces); Secrets it creates or
//     updates are of a type of spc.SyncableSecretTypes and carry
//     secrets-store.csi.k8s.io/managed=true and the synced-from annotation,
//     Secrets it updates or deletes were labelled managed before, tokens it
//     requests live at most an hour, and a token bound to no pod names an
//     audience that is not the API server's (KubernetesAudiences).
//   - ValidatingAdmissionPolicy and binding ssi-sync-podless-guard: a token
//     bound to no pod only for a service account whose allow-sync
//     annotation names classes.
//
// What neither can express (RBAC has no per-label or per-relation rules)
// is documented in docs/sync.md: reading is cluster-wide, and a token may
// be minted for any service account (bound tokens only for the service
// account the pod runs as, which the API server checks).
func RBAC(o RBACOptions) []client.Object {
	o = o.withDefaults()
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: o.ServiceAccount, Namespace: o.Namespace}}
	clusterRole := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync", Labels: rbacLabels()},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"secrets-store.csi.x-k8s.io"}, Resources: []string{"secretproviderclasses"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			// The text of a class's templates kept in a ConfigMap
			// (configMapKeyRef), read in the class's namespace at sync.
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		},
	}
	clusterBinding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync", Labels: rbacLabels()},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "ssi-sync"},
		Subjects:   subject,
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-leader-election", Namespace: o.Namespace, Labels: rbacLabels()},
		Rules: []rbacv1.PolicyRule{
			// create cannot be limited by name: the name of a new
			// object is not known to RBAC.
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{LeaderElectionID}, Verbs: []string{"get", "update"}},
		},
	}
	roleBinding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-leader-election", Namespace: o.Namespace, Labels: rbacLabels()},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "ssi-sync-leader-election"},
		Subjects:   subject,
	}
	fail := admissionregistrationv1.Fail
	protected := ProtectedNamespaces(o.Namespace, o.AllowProtectedNamespaces)
	managed := fmt.Sprintf("'%s'", LabelManaged)
	syncedFrom := fmt.Sprintf("'%s'", AnnotationSyncedFrom)
	// Both policies match the controller's requests for tokens, and only
	// the controller's.
	tokenRule := admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"serviceaccounts/token"}},
	}}
	byController := []admissionregistrationv1.MatchCondition{{
		Name:       "sync-controller",
		Expression: fmt.Sprintf("request.userInfo.username == '%s'", o.Username()),
	}}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-guard", Labels: rbacLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
					{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
					}},
					tokenRule,
				},
			},
			MatchConditions: byController,
			Validations: append(protectedRule(protected), []admissionregistrationv1.Validation{
				{
					Expression: fmt.Sprintf("request.resource.resource != 'secrets' || request.operation == 'DELETE' || "+
						"!has(object.type) || object.type in %s", celList(spc.SyncableSecretTypes)),
					Message: fmt.Sprintf("the sync controller writes only Secrets of the types %s (never service-account or bootstrap tokens)", strings.Join(spc.SyncableSecretTypes, ", ")),
				},
				{
					Expression: "request.resource.resource != 'serviceaccounts' || " + podBound + " || " +
						fmt.Sprintf("(size(object.spec.?audiences.orValue([])) > 0 && !object.spec.?audiences.orValue([]).exists(a, a in %s))", celList(o.APIServerAudiences)),
					Message: "the sync controller requests a token bound to no pod only for an explicit audience that is not the API server's",
				},
				{
					Expression: fmt.Sprintf("request.resource.resource != 'secrets' || request.operation == 'DELETE' || "+
						"(has(object.metadata.labels) && %[1]s in object.metadata.labels && object.metadata.labels[%[1]s] == 'true' && "+
						"has(object.metadata.annotations) && %[2]s in object.metadata.annotations)", managed, syncedFrom),
					Message: fmt.Sprintf("the sync controller writes only Secrets labelled %s=true and annotated %s", LabelManaged, AnnotationSyncedFrom),
				},
				{
					Expression: fmt.Sprintf("request.resource.resource != 'secrets' || request.operation == 'CREATE' || "+
						"(has(oldObject.metadata.labels) && %[1]s in oldObject.metadata.labels && oldObject.metadata.labels[%[1]s] == 'true')", managed),
					Message: fmt.Sprintf("the sync controller changes and deletes only Secrets labelled %s=true", LabelManaged),
				},
				{
					Expression: fmt.Sprintf("request.resource.resource != 'serviceaccounts' || (has(object.spec.expirationSeconds) && object.spec.expirationSeconds <= %d)", MaxTokenSeconds),
					Message:    fmt.Sprintf("the sync controller requests only tokens that expire within %d seconds", MaxTokenSeconds),
				},
			}...),
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-guard", Labels: rbacLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "ssi-sync-guard",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	// Pod-less tokens only for a service account that consents. The
	// policy cannot read the requested service account by name; it is
	// given every service account of the request's namespace as params
	// (paramRef without namespace: the request's), and for each the
	// expression holds unless it is the requested one without consent
	// (the results are ANDed). Which classes the consent names is checked
	// by the controller: the policy does not see the class.
	allowSync := fmt.Sprintf("'%s'", AnnotationAllowSync)
	deny := admissionregistrationv1.DenyAction
	podless := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-podless-guard", Labels: rbacLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ServiceAccount"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
					tokenRule,
				},
			},
			MatchConditions: byController,
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf(podBound+" || params.metadata.name != request.name || "+
					"(has(params.metadata.annotations) && %[1]s in params.metadata.annotations && "+
					"params.metadata.annotations[%[1]s].trim() != '%[2]s' && params.metadata.annotations[%[1]s].split(',').exists(c, c.trim() != ''))", allowSync, legacyAllowSync),
				Message: fmt.Sprintf("the sync controller requests a token bound to no pod only for a service account whose %s annotation names classes", AnnotationAllowSync),
			}},
		},
	}
	podlessBinding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-sync-podless-guard", Labels: rbacLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "ssi-sync-podless-guard",
			ParamRef:          &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{}, ParameterNotFoundAction: &deny},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return []client.Object{clusterRole, clusterBinding, role, roleBinding, policy, binding, podless, podlessBinding}
}

// podBound holds for a TokenRequest bound to a pod. The API server hands
// admission a null boundObjectRef for an unbound request, which has()
// reports as present: optional field selection reads it without error.
const podBound = "object.spec.?boundObjectRef.?kind.orValue('') == 'Pod'"

// protectedRule refuses every request in the protected namespaces (none
// when the operator allows both).
func protectedRule(protected []string) []admissionregistrationv1.Validation {
	if len(protected) == 0 {
		return nil
	}
	return []admissionregistrationv1.Validation{{
		Expression: fmt.Sprintf("!(request.namespace in %s)", celList(protected)),
		Message:    fmt.Sprintf("the sync controller writes no Secrets and mints no tokens in the protected namespaces %s", strings.Join(protected, ", ")),
	}}
}

func rbacLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "secrets-store-injector", "app.kubernetes.io/component": "sync-controller"}
}

// RBACYAML renders RBAC as a YAML stream with a header naming its source.
func RBACYAML(o RBACOptions) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Access of the secret sync controller (internal/secretsync.RBAC).\n# Generated by `make manifests`; do not edit. See docs/sync.md.\n")
	for _, obj := range RBAC(o) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("render %T: %w", obj, err)
		}
		b = bytes.Replace(b, []byte("  creationTimestamp: null\n"), nil, 1)
		b = bytes.TrimSuffix(b, []byte("status: {}\n"))
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
