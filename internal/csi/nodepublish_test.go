package csi

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestPublishHandsNodePublishSecretToProvider: the keys of the volume's
// nodePublishSecretRef Secret that kubelet sends in the request's secrets
// reach the built-in provider as Request.Secrets, without the
// service-account tokens kubelet may put there too; a republish uses the
// keys of its own request (a rotated Secret); a request without them
// hands none; oversized keys fail the publish naming the size, not a
// value.
func TestPublishHandsNodePublishSecretToProvider(t *testing.T) {
	h := newHarness(t, nil, spcObject("team-a", "db", "test", nil))
	ctx := context.Background()
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	req := publishReq(target, web)
	req.Secrets = map[string]string{AttrTokens: `{"vault":{"token":"t"}}`, "clientid": "c", "clientsecret": "s1"}
	if _, err := h.d.NodePublishVolume(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got, want := h.prov.lastRequest().Secrets, map[string]string{"clientid": "c", "clientsecret": "s1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("first publish: secrets = %v, want %v", got, want)
	}

	h.clk.Step(3 * time.Minute) // past --rotation-poll-interval: a republish fetches
	req.Secrets = map[string]string{"clientid": "c", "clientsecret": "s2"}
	if _, err := h.d.NodePublishVolume(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := h.prov.lastRequest().Secrets["clientsecret"]; got != "s2" || h.prov.count() != 2 {
		t.Errorf("republish: clientsecret = %q after %d fetches, want the rotated one", got, h.prov.count())
	}

	plain := kubeletTarget(t, h.root, "uid-2", "secrets")
	pv := web
	pv.uid = "uid-2"
	if _, err := h.d.NodePublishVolume(ctx, publishReq(plain, pv)); err != nil {
		t.Fatal(err)
	}
	if got := h.prov.lastRequest().Secrets; got != nil {
		t.Errorf("without a nodePublishSecretRef: secrets = %v, want nil", got)
	}

	big := kubeletTarget(t, h.root, "uid-3", "secrets")
	pv.uid = "uid-3"
	breq := publishReq(big, pv)
	breq.Secrets = map[string]string{"key.json": strings.Repeat("k", maxPublishSecretBytes)}
	_, err := h.d.NodePublishVolume(ctx, breq)
	if err == nil || !strings.Contains(err.Error(), "more than") || strings.Contains(err.Error(), "kkkk") {
		t.Fatalf("oversized secrets: %v", err)
	}
}
