package chart

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestWebhookNetworkPolicy checks the NetworkPolicy in front of the webhook
// pods (issue 14, finding 8): the webhook port admits only the API server's
// addresses (with the pod CIDRs excepted), the metrics port its peers, the
// health port everyone, and the policy can be turned off.
func TestWebhookNetworkPolicy(t *testing.T) {
	r := runner(t)
	type rule struct {
		port   string
		cidrs  []string
		except [][]string
		peers  int
	}
	tests := map[string]struct {
		o     Options
		rules []rule
	}{
		"defaults": {Options{}, []rule{
			{port: "webhook", cidrs: []string{"0.0.0.0/0", "::/0"}, except: [][]string{nil, nil}},
			{port: "metrics", peers: 1},
			{port: "health"},
		}},
		"pod CIDRs excepted by family, metrics from anywhere": {nonDefault, []rule{
			{port: "webhook", cidrs: []string{"0.0.0.0/0", "::/0"}, except: [][]string{{"10.244.0.0/16"}, {"fd00:10:244::/56"}}},
			{port: "metrics"},
			{port: "health"},
		}},
		"control plane CIDR": {Options{Set: []string{"webhook.networkPolicy.apiServerCIDRs={172.18.0.0/24}", "webhook.networkPolicy.podCIDRs={10.244.0.0/16}"}}, []rule{
			{port: "webhook", cidrs: []string{"172.18.0.0/24"}, except: [][]string{nil}},
			{port: "metrics", peers: 1},
			{port: "health"},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			np := convert[networkingv1.NetworkPolicy](t, Get(objs, "NetworkPolicy", "ssi-webhook"))
			dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
			if !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
				t.Errorf("policy selects %v, the webhook pods are %v", np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels)
			}
			if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policy types %v, want Ingress only", np.Spec.PolicyTypes)
			}
			if len(np.Spec.Ingress) != len(tc.rules) {
				t.Fatalf("%d ingress rules, want %d: %+v", len(np.Spec.Ingress), len(tc.rules), np.Spec.Ingress)
			}
			for i, want := range tc.rules {
				got := np.Spec.Ingress[i]
				if len(got.Ports) != 1 || got.Ports[0].Port == nil || got.Ports[0].Port.StrVal != want.port {
					t.Errorf("rule %d ports %+v, want %s", i, got.Ports, want.port)
				}
				if want.cidrs == nil {
					if len(got.From) != want.peers {
						t.Errorf("rule %d (%s) admits %+v, want %d peers", i, want.port, got.From, want.peers)
					}
					continue
				}
				var cidrs []string
				var except [][]string
				for _, p := range got.From {
					if p.IPBlock == nil || p.PodSelector != nil || p.NamespaceSelector != nil {
						t.Errorf("webhook port admits a peer that is not an ipBlock: %+v", p)
						continue
					}
					cidrs = append(cidrs, p.IPBlock.CIDR)
					except = append(except, p.IPBlock.Except)
				}
				if !reflect.DeepEqual(cidrs, want.cidrs) || !reflect.DeepEqual(except, want.except) {
					t.Errorf("webhook port admits %v except %v, want %v except %v", cidrs, except, want.cidrs, want.except)
				}
			}
		})
	}
	if objs := render(t, r, Options{Set: []string{"webhook.networkPolicy.enabled=false"}}); Get(objs, "NetworkPolicy", "ssi-webhook") != nil {
		t.Error("webhook.networkPolicy.enabled=false still installs the NetworkPolicy")
	}
}

// TestNetidArguments checks the chart hands the operator's choices to the
// binaries: --allow-process-identity to the node shim and the sync
// controller, --client-ca with its ConfigMap mounted to the webhook.
func TestNetidArguments(t *testing.T) {
	r := runner(t)
	for name, tc := range map[string]struct {
		o               Options
		allow, clientCA bool
	}{
		"defaults":    {o: Options{Set: []string{"syncSecret.enabled=true"}}},
		"non-default": {o: nonDefault, allow: true, clientCA: true},
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			ds := convert[appsv1.DaemonSet](t, Get(objs, "DaemonSet", "ssi-node"))
			dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
			allowArg := "--allow-process-identity=false"
			if tc.allow {
				allowArg = "--allow-process-identity=true"
			}
			if !contains(ds.Spec.Template.Spec.Containers[0].Args, allowArg) {
				t.Errorf("shim args lack %s: %v", allowArg, ds.Spec.Template.Spec.Containers[0].Args)
			}
			sync := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-sync")).Spec.Template.Spec.Containers[0]
			if !contains(sync.Args, allowArg) {
				t.Errorf("sync controller args lack %s: %v", allowArg, sync.Args)
			}
			c := dep.Spec.Template.Spec.Containers[0]
			if contains(c.Args, allowArg) {
				t.Errorf("the admission server, which no longer syncs, got %s: %v", allowArg, c.Args)
			}
			const caArg = "--client-ca=/etc/ssi-webhook/client-ca/ca.crt"
			if got := contains(c.Args, caArg); got != tc.clientCA {
				t.Errorf("webhook has %s: %v, want %v", caArg, got, tc.clientCA)
			}
			var mounted, volume bool
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.Name == "client-ca" && m.MountPath == "/etc/ssi-webhook/client-ca"
			}
			for _, v := range dep.Spec.Template.Spec.Volumes {
				volume = volume || v.Name == "client-ca" && v.ConfigMap != nil && v.ConfigMap.Name == "apiserver-webhook-client-ca"
			}
			if mounted != tc.clientCA || volume != tc.clientCA {
				t.Errorf("client CA mounted %v, volume %v, want %v", mounted, volume, tc.clientCA)
			}
		})
	}
}
