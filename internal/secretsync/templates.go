package secretsync

import (
	"fmt"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// classTemplates compiles the inline templates of a class (render.Annotation)
// for sync: a secretObjects item may name a rendered file. The controller
// reads no ConfigMaps, so a template whose text is in one is not rendered
// here; its path is returned in fromConfigMap for a clear problem. The Set
// is reused while the annotation is unchanged, so that Render can reuse the
// files of templates whose objects did not change.
func (st *classState) classTemplates(class *ssiv1.SecretProviderClass, parsed *spc.Class) (set *render.Set, fromConfigMap []string, err error) {
	ann := class.Annotations[render.Annotation]
	if st.tplAnnotation == ann && st.tplSet != nil {
		return st.tplSet, st.tplFromConfigMap, nil
	}
	st.tplAnnotation, st.tplSet, st.tplFromConfigMap, st.rendered = ann, nil, nil, nil
	specs, err := render.ParseAnnotation(ann)
	if err != nil || len(specs) == 0 {
		return nil, nil, err
	}
	inline := specs[:0:0]
	for _, s := range specs {
		if s.ConfigMapKeyRef != nil {
			fromConfigMap = append(fromConfigMap, s.Path)
			continue
		}
		inline = append(inline, s)
	}
	tpls, err := render.Resolve(inline, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("annotation %s: %w", render.Annotation, err)
	}
	if set, err = parsed.CompileTemplates(tpls); err != nil {
		return nil, nil, err
	}
	st.tplSet, st.tplFromConfigMap = set, fromConfigMap
	return set, fromConfigMap, nil
}

// withRendered returns files with the files set renders from them added
// (a new map: files is the class's cached fetch). The last render is kept
// in st.
func (st *classState) withRendered(set *render.Set, files map[string][]byte) (map[string][]byte, error) {
	res, err := set.Render(files, st.rendered)
	if err != nil {
		return nil, err
	}
	st.rendered = res
	out := make(map[string][]byte, len(files)+len(res.Files))
	for k, v := range files {
		out[k] = v
	}
	// Hidden (renderOnly) objects stay syncable: hiding concerns the pod's
	// volume.
	for _, f := range res.Files {
		out[f.Path] = f.Data
	}
	return out, nil
}
