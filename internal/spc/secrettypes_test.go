package spc

import (
	"reflect"
	"testing"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

func TestSecretObjectWarnings(t *testing.T) {
	objs := []*ssiv1.SecretObject{
		{SecretName: "ok", Type: "Opaque"},
		nil,
		{SecretName: "legacy", Type: "kubernetes.io/service-account-token"},
		{SecretName: " join ", Type: " bootstrap.kubernetes.io/token "},
		{SecretName: "tls", Type: "kubernetes.io/tls"},
		{SecretName: "untyped"}, // the sync controller's required-field check reports it
	}
	const allowed = "(allowed: Opaque, kubernetes.io/basic-auth, kubernetes.io/dockercfg, kubernetes.io/dockerconfigjson, kubernetes.io/ssh-auth, kubernetes.io/tls)"
	want := []string{
		`volume "s": SecretProviderClass db: secretObjects[2] (Secret "legacy"): type "kubernetes.io/service-account-token" is not a type the sync controller writes ` + allowed + `; the Secret is not synced`,
		`volume "s": SecretProviderClass db: secretObjects[3] (Secret "join"): type "bootstrap.kubernetes.io/token" is not a type the sync controller writes ` + allowed + `; the Secret is not synced`,
	}
	if got := SecretObjectWarnings(`volume "s"`, "db", objs); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings\n got %q\nwant %q", got, want)
	}
}
