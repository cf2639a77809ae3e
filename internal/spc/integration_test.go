package spc_test

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// TestSeedClassesRoundTripThroughAPIServer installs the CRDs into a real
// kube-apiserver, applies the seed guide's classes verbatim, reads them back
// unchanged and parses every one.
func TestSeedClassesRoundTripThroughAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "production"}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range spc.SeedClasses(t) {
		want := spc.LoadClass(t, path)
		t.Run(want.Name, func(t *testing.T) {
			obj := want.DeepCopy()
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("apply %s: %v", path, err)
			}
			var got ssiv1.SecretProviderClass
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(want), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Spec, want.Spec) {
				t.Fatalf("spec changed in the round trip:\n got %+v\nwant %+v", got.Spec, want.Spec)
			}
			c, err := spc.Parse(&got)
			if err != nil {
				t.Fatalf("parse after round trip: %v", err)
			}
			if c.Namespace != "production" || !c.BuiltIn() || len(c.Files()) == 0 {
				t.Fatalf("parsed %+v", c)
			}
		})
	}
	// The deprecated v1alpha1 version is still served, as upstream serves it.
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(ssiv1.GroupVersion.WithKind("SecretProviderClassList"))
	list.APIVersion = "secrets-store.csi.x-k8s.io/v1alpha1"
	if err := env.Client.List(ctx, &list, client.InNamespace("production")); err != nil {
		t.Fatalf("list v1alpha1: %v", err)
	}
	if len(list.Items) != 5 {
		t.Fatalf("v1alpha1 lists %d classes, want 5", len(list.Items))
	}
}
