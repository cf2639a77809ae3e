package csi

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ssinjector/ssi/internal/render"
)

// TestPublishRendersTemplates: the shim resolves a class's templates (a
// ConfigMap of the pod's namespace read with the API reader), renders them
// into the published volume and re-renders on rotation; a template it
// cannot resolve fails the publish naming the class and the template.
func TestPublishRendersTemplates(t *testing.T) {
	ann := "- path: app.env\n  configMapKeyRef: {name: tpl, key: app.env}\n- path: key.txt\n  template: 'key={{ object \"api-key\" }}'\n  renderOnly: true\n"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tpl"}, Data: map[string]string{"app.env": `DB={{ object "db-password" | shellQuote }}`}}
	ctx := context.Background()

	t.Run("renders and rotates", func(t *testing.T) {
		class := spcObject("team-a", "db", "test", nil)
		class.Annotations = map[string]string{render.Annotation: ann}
		h := newHarness(t, nil, class, cm)
		target := kubeletTarget(t, h.root, "uid-1", "secrets")
		if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
			t.Fatal(err)
		}
		got := readVolume(t, target)
		want := map[string]string{"db-password": "s3cr3t", "app.env": "DB='s3cr3t'", "key.txt": "key=k1"}
		if len(got) != len(want) {
			t.Errorf("volume = %v, want %v (api-key hidden by renderOnly)", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		h.prov.set(map[string]string{"db-password": "rotated", "api-key": "k1"}, nil)
		h.clk.Step(3 * time.Minute)
		if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
			t.Fatal(err)
		}
		if got := readVolume(t, target)["app.env"]; got != "DB='rotated'" {
			t.Errorf("after rotation app.env = %q", got)
		}
	})
	t.Run("missing ConfigMap", func(t *testing.T) {
		class := spcObject("team-a", "db", "test", nil)
		class.Annotations = map[string]string{render.Annotation: ann}
		h := newHarness(t, nil, class)
		target := kubeletTarget(t, h.root, "uid-1", "secrets")
		_, err := h.d.NodePublishVolume(ctx, publishReq(target, web))
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "SecretProviderClass team-a/db") || !strings.Contains(err.Error(), `template "app.env": ConfigMap tpl has no key app.env`) {
			t.Fatalf("publish = %v, want FailedPrecondition naming the class and template", err)
		}
		if e := h.event(); !strings.Contains(e, ReasonClassInvalid) {
			t.Errorf("event %q, want %s", e, ReasonClassInvalid)
		}
	})
}
