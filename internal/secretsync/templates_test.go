package secretsync

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestSyncTemplates: a rendered path is a known file for secretObjects; the
// files handed to the Secret builder include the rendered ones (renderOnly
// objects stay syncable); a template's text in a ConfigMap is read through
// the getter at every sync; the compiled set is reused while the resolved
// templates are unchanged.
func TestSyncTemplates(t *testing.T) {
	params := map[string]string{"roleName": "app", "objects": "- objectName: user\n  secretPath: secret/data/db\n  secretKey: user\n- objectName: pw\n  secretPath: secret/data/db\n  secretKey: pw\n"}
	parsed, err := spc.ParseSpec("ns", "db", "vault", params)
	if err != nil {
		t.Fatal(err)
	}
	ann := "- path: app.env\n  template: 'USER={{ object \"user\" }} PW={{ object \"pw\" }}'\n  renderOnly: true\n- path: big.conf\n  configMapKeyRef: {name: c, key: k}\n"
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", Annotations: map[string]string{render.Annotation: ann}}}
	cmText := "big={{ object \"user\" }}"
	get := func(name, key string) (string, bool, error) {
		if name != "c" || key != "k" {
			return "", false, nil
		}
		return cmText, true, nil
	}
	st := &classState{}
	set, err := st.classTemplates(class, parsed, get)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&classState{}).classTemplates(class, parsed, func(string, string) (string, bool, error) { return "", false, nil }); err == nil || !strings.Contains(err.Error(), "big.conf") {
		t.Errorf("a missing ConfigMap: %v, want the template named", err)
	}

	have, known := classFiles(parsed, templatePaths(set))
	if !have("app.env") || !have("pw") || !have("big.conf") || have("other") {
		t.Errorf("known files: app.env %v, pw %v, big.conf %v, other %v", have("app.env"), have("pw"), have("big.conf"), have("other"))
	}
	if strings.Join(known, ",") != "app.env,big.conf,pw,user" {
		t.Errorf("known = %v, want sorted with the rendered path", known)
	}

	fetched := map[string][]byte{"user": []byte("app"), "pw": []byte("sync-pw-1")}
	files, _, err := st.withRendered(set, fetched, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files["app.env"]); got != "USER=app PW=sync-pw-1" {
		t.Errorf("app.env = %q", got)
	}
	if got := string(files["big.conf"]); got != "big=app" {
		t.Errorf("big.conf (text from the ConfigMap) = %q", got)
	}
	if string(files["pw"]) != "sync-pw-1" {
		t.Error("a renderOnly object is not syncable")
	}
	if _, ok := fetched["app.env"]; ok {
		t.Error("the cached fetch was modified")
	}

	again, err := st.classTemplates(class, parsed, get)
	if err != nil || again != set {
		t.Fatalf("unchanged templates recompiled (%v)", err)
	}
	if _, _, err := st.withRendered(set, fetched, nil); err != nil || len(st.rendered.Rendered) != 0 {
		t.Errorf("unchanged objects re-rendered %v (%v)", st.rendered.Rendered, err)
	}
	cmText = "big2={{ object \"user\" }}"
	changed, err := st.classTemplates(class, parsed, get)
	if err != nil || changed == set || st.rendered != nil {
		t.Fatalf("an edited ConfigMap kept the old set or render (%v)", err)
	}
	if files, _, err := st.withRendered(changed, fetched, nil); err != nil || string(files["big.conf"]) != "big2=app" {
		t.Errorf("big.conf after the ConfigMap changed = %q (%v)", files["big.conf"], err)
	}
	set = changed
	class.Annotations[render.Annotation] = "- {path: app.env, template: 'x={{ object \"user\" }}'}"
	if changed, err := st.classTemplates(class, parsed, get); err != nil || changed == set || st.rendered != nil {
		t.Errorf("a changed annotation kept the old set or render (%v)", err)
	}
	class.Annotations[render.Annotation] = "- {path: app.env, template: '{{ object \"nope\" }}'}"
	if _, err := st.classTemplates(class, parsed, get); err == nil || !strings.Contains(err.Error(), `template "app.env"`) {
		t.Errorf("unknown object: %v", err)
	}
}
