package secretsync

import (
	"context"
	"fmt"
	"slices"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// classTemplates compiles the templates of a class (render.Annotation) for
// sync: a secretObjects item may name a rendered file. Texts kept in a
// ConfigMap are read through get (in the class's namespace) at every
// sync, as the node shim reads them at every publish, so an edited
// ConfigMap is rendered at the next sync. The Set is reused while the
// resolved templates are unchanged, so that Render can reuse the files of
// templates whose objects did not change.
func (st *classState) classTemplates(class *ssiv1.SecretProviderClass, parsed *spc.Class, get render.ConfigMapGetter) (*render.Set, error) {
	specs, err := render.ParseAnnotation(class.Annotations[render.Annotation])
	if err != nil || len(specs) == 0 {
		st.tplResolved, st.tplSet, st.rendered = nil, nil, nil
		return nil, err
	}
	tpls, err := render.Resolve(specs, get)
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", render.Annotation, err)
	}
	if st.tplSet != nil && slices.Equal(st.tplResolved, tpls) {
		return st.tplSet, nil
	}
	st.tplResolved, st.tplSet, st.rendered = nil, nil, nil
	set, err := parsed.CompileTemplates(tpls)
	if err != nil {
		return nil, err
	}
	st.tplResolved, st.tplSet = tpls, set
	return set, nil
}

// withRendered returns files with the files set renders from them added
// (a new map: files is the class's cached fetch). The last render is kept
// in st. A template that reads a file of absent (an optional object the
// backend does not have) is not rendered, so its file is absent too:
// skipped lists those paths (render.Result.Skipped), which the caller
// treats as absent as well, so that a secretObjects key taken from one is
// left out rather than written empty.
func (st *classState) withRendered(set *render.Set, files map[string][]byte, absent map[string]bool) (out map[string][]byte, skipped []string, err error) {
	res, err := set.RenderWithout(files, st.rendered, absent)
	if err != nil {
		return nil, nil, err
	}
	st.rendered = res
	out = make(map[string][]byte, len(files)+len(res.Files))
	for k, v := range files {
		out[k] = v
	}
	// Hidden (renderOnly) objects stay syncable: hiding concerns the pod's
	// volume.
	for _, f := range res.Files {
		out[f.Path] = f.Data
	}
	return out, res.Skipped, nil
}

// withAbsent is absent (the class's optional files, which it does not
// change) with the paths of skipped added.
func withAbsent(absent map[string]bool, skipped []string) map[string]bool {
	if len(skipped) == 0 {
		return absent
	}
	out := make(map[string]bool, len(absent)+len(skipped))
	for p := range absent {
		out[p] = true
	}
	for _, p := range skipped {
		out[p] = true
	}
	return out
}

// configMaps reads the ConfigMaps that hold template texts, from the API
// server (not cached: only classes with such templates need them) and
// only in the class's namespace.
func (r *Reconciler) configMaps(ctx context.Context, namespace string) render.ConfigMapGetter {
	return scheme.ConfigMapKeys(ctx, r.live, namespace)
}
