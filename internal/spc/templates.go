package spc

import (
	"fmt"

	"github.com/ssinjector/ssi/internal/render"
)

// ObjectPaths are the object files a template of the class may name: the
// path of every file of Files, and for an Azure object with version history
// each version file "<Path>/<i>" (i from 0 to objectVersionHistory-1; a
// secret with fewer versions writes fewer, and a template naming a missing
// one fails when rendered). Empty for a plugin class.
func (c *Class) ObjectPaths() []string {
	history := map[string]int{}
	if c.Azure != nil {
		for _, o := range c.Azure.Objects {
			if o.ObjectVersionHistory > 1 {
				history[o.FileName] = int(o.ObjectVersionHistory)
			}
		}
	}
	var out []string
	for _, f := range c.Files() {
		if !f.Dir {
			out = append(out, f.Path)
			continue
		}
		for i := range history[f.Path] {
			out = append(out, fmt.Sprintf("%s/%d", f.Path, i))
		}
	}
	return out
}

// Templates parses the value of render.Annotation of the class, resolves
// its ConfigMap references through get (nil when the caller cannot read
// ConfigMaps) and compiles it against the class's object files (a plugin
// class's are known only after a fetch: render.CompileUnknownObjects). An
// annotation that declares nothing gives nil templates and a nil Set. The
// error does not name the class; callers prefix it.
func (c *Class) Templates(annotation string, get render.ConfigMapGetter) ([]render.Template, *render.Set, error) {
	specs, err := render.ParseAnnotation(annotation)
	if err != nil || len(specs) == 0 {
		return nil, nil, err
	}
	tpls, err := render.Resolve(specs, get)
	if err != nil {
		return nil, nil, fmt.Errorf("annotation %s: %w", render.Annotation, err)
	}
	set, err := c.CompileTemplates(tpls)
	if err != nil {
		return nil, nil, err
	}
	return tpls, set, nil
}

// CompileTemplates compiles resolved templates against the class's object
// files (render.Compile), or without them for a plugin class; no templates
// give a nil Set.
func (c *Class) CompileTemplates(tpls []render.Template) (*render.Set, error) {
	if len(tpls) == 0 {
		return nil, nil
	}
	var set *render.Set
	var err error
	if c.BuiltIn() {
		set, err = render.Compile(tpls, c.ObjectPaths())
	} else {
		set, err = render.CompileUnknownObjects(tpls)
	}
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", render.Annotation, err)
	}
	return set, nil
}
