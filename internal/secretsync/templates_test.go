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
// objects stay syncable); a template's text in a ConfigMap is named as
// unsyncable; the compiled set is reused while the annotation is unchanged.
func TestSyncTemplates(t *testing.T) {
	params := map[string]string{"roleName": "app", "objects": "- objectName: user\n  secretPath: secret/data/db\n  secretKey: user\n- objectName: pw\n  secretPath: secret/data/db\n  secretKey: pw\n"}
	parsed, err := spc.ParseSpec("ns", "db", "vault", params)
	if err != nil {
		t.Fatal(err)
	}
	ann := "- path: app.env\n  template: 'USER={{ object \"user\" }} PW={{ object \"pw\" }}'\n  renderOnly: true\n- path: big.conf\n  configMapKeyRef: {name: c, key: k}\n"
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", Annotations: map[string]string{render.Annotation: ann}}}
	st := &classState{}
	set, fromCM, err := st.classTemplates(class, parsed)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromCM) != 1 || fromCM[0] != "big.conf" {
		t.Errorf("ConfigMap templates = %v", fromCM)
	}

	have, known := classFiles(parsed, templatePaths(set))
	if !have("app.env") || !have("pw") || have("big.conf") {
		t.Errorf("known files: app.env %v, pw %v, big.conf %v", have("app.env"), have("pw"), have("big.conf"))
	}
	if strings.Join(known, ",") != "app.env,pw,user" {
		t.Errorf("known = %v, want sorted with the rendered path", known)
	}

	s := secretSpec{index: 0, name: "env", items: []item{{objectName: "big.conf", key: "k"}, {objectName: "app.env", key: "e"}}}
	errs := checkConfigMapTemplates(s, class, fromCM)
	if len(errs) != 1 || !strings.Contains(errs[0], `data[0].objectName "big.conf" is a template of SecretProviderClass ns/db whose text is in a ConfigMap`) {
		t.Errorf("ConfigMap template problems = %q", errs)
	}

	fetched := map[string][]byte{"user": []byte("app"), "pw": []byte("sync-pw-1")}
	files, err := st.withRendered(set, fetched)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files["app.env"]); got != "USER=app PW=sync-pw-1" {
		t.Errorf("app.env = %q", got)
	}
	if string(files["pw"]) != "sync-pw-1" {
		t.Error("a renderOnly object is not syncable")
	}
	if _, ok := fetched["app.env"]; ok {
		t.Error("the cached fetch was modified")
	}

	again, _, err := st.classTemplates(class, parsed)
	if err != nil || again != set {
		t.Fatalf("unchanged annotation recompiled (%v)", err)
	}
	if _, err := st.withRendered(set, fetched); err != nil || len(st.rendered.Rendered) != 0 {
		t.Errorf("unchanged objects re-rendered %v (%v)", st.rendered.Rendered, err)
	}
	class.Annotations[render.Annotation] = "- {path: app.env, template: 'x={{ object \"user\" }}'}"
	if changed, _, err := st.classTemplates(class, parsed); err != nil || changed == set || st.rendered != nil {
		t.Errorf("a changed annotation kept the old set or render (%v)", err)
	}
	class.Annotations[render.Annotation] = "- {path: app.env, template: '{{ object \"nope\" }}'}"
	if _, _, err := st.classTemplates(class, parsed); err == nil || !strings.Contains(err.Error(), `template "app.env"`) {
		t.Errorf("unknown object: %v", err)
	}
}
