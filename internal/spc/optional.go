package spc

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Class annotations our parser owns for optional objects. The upstream
// driver and providers never read a class's annotations, so a class that
// carries them works unchanged there (where every object stays required).
const (
	// AnnotationOptionalObjects lists, separated by commas or newlines,
	// the objects of the class that may be missing in the backend: a
	// missing one fails neither the first fetch nor a rotation, its files
	// are simply absent until it exists. Each entry is an object's name
	// as the class writes it (AWS objectName or objectAlias, Azure
	// objectName or objectAlias, GCP resourceName or fileName/path, Vault
	// objectName).
	AnnotationOptionalObjects = "secrets-store-injector.io/optional-objects"
	// AnnotationOptionalOnDelete says what happens to the files of an
	// optional object that existed and is now missing: OnDeleteRemove
	// (the default) removes them at the next rotation, OnDeleteKeep keeps
	// the last content.
	AnnotationOptionalOnDelete = "secrets-store-injector.io/optional-objects-on-delete"
)

// Values of AnnotationOptionalOnDelete.
const (
	OnDeleteRemove = "remove"
	OnDeleteKeep   = "keep"
)

// ParseAnnotated is ParseSpec for a class with its annotations: besides
// the parameters it reads the annotations our parser owns
// (AnnotationOptionalObjects, AnnotationOptionalOnDelete). The webhook,
// the node shim, the sync controller and the agent (from the snapshot
// the webhook took) all call it, so a class means the same to each.
func ParseAnnotated(namespace, name, provider string, params, annotations map[string]string) (*Class, error) {
	c, err := ParseSpec(namespace, name, provider, params)
	if err != nil {
		return nil, err
	}
	if err := parseOptional(c, annotations); err != nil {
		return nil, err
	}
	return c, nil
}

// IsOptional reports whether the object with provider object ID id is
// optional (AnnotationOptionalObjects).
func (c *Class) IsOptional(id string) bool {
	_, ok := c.Optional[id]
	return ok
}

// OptionalPaths are the files the class's optional objects write (an
// Azure version history's files "<path>/<i>" included): the files
// that may be absent from a fetch, for templates (render.Set.RenderWithout)
// and synced Secrets.
func (c *Class) OptionalPaths() map[string]bool {
	if len(c.Optional) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, e := range c.optionalEntries() {
		if c.IsOptional(e.id) {
			for _, p := range e.paths {
				out[p] = true
			}
		}
	}
	return out
}

// maxOptionalHistory bounds the version files of an optional Azure object
// with objectVersionHistory that are tracked as its own (the webhook, the
// node shim and the sync controller parse every tenant's classes).
const maxOptionalHistory = 1024

// maxQuoted bounds a name and the list of known names quoted in a denial.
const maxQuoted = 256

// optionalEntry is one object of the class as the optional-objects
// annotation may name it.
type optionalEntry struct {
	names []string // the names it answers to
	id    string   // the provider's object ID
	ids   []string // every object ID it yields (sub-files included)
	paths []string // the files those objects write
}

// optionalEntries lists the objects of a built-in class with the names
// the annotation may use and the provider object IDs they yield: AWS
// objects are identified by their file name and each jmesPath entry is
// an object of its own; an Azure object is "<type>/<name>", its version
// history files "<type>/<name>/<i>"; a GCP secret is its resource name; a
// Vault object its objectName.
func (c *Class) optionalEntries() []optionalEntry {
	var out []optionalEntry
	switch {
	case c.AWS != nil:
		for _, o := range c.AWS.Objects {
			e := optionalEntry{names: []string{o.ObjectName, o.ObjectAlias}, id: o.FileName, ids: []string{o.FileName}, paths: []string{o.FileName}}
			for _, jp := range o.JMESPath {
				e.ids = append(e.ids, jp.FileName)
				e.paths = append(e.paths, jp.FileName)
			}
			out = append(out, e)
		}
	case c.Azure != nil:
		for i := range c.Azure.Objects {
			o := &c.Azure.Objects[i]
			e := optionalEntry{names: []string{o.ObjectName, o.ObjectAlias}, id: o.ID(), ids: []string{o.ID()}, paths: []string{o.FileName}}
			if o.ObjectVersionHistory > 1 {
				// The files of at most maxOptionalHistory versions follow
				// the object: a class may ask for 2^31 versions, which no
				// shared process may enumerate (the backend has far fewer).
				e.ids, e.paths = nil, nil
				for v := range min(o.ObjectVersionHistory, maxOptionalHistory) {
					e.ids = append(e.ids, fmt.Sprintf("%s/%d", o.ID(), v))
					e.paths = append(e.paths, fmt.Sprintf("%s/%d", o.FileName, v))
				}
			}
			out = append(out, e)
		}
	case c.GCP != nil:
		for _, s := range c.GCP.Secrets {
			out = append(out, optionalEntry{names: []string{s.ResourceName, s.FileName, s.Path}, id: s.ResourceName, ids: []string{s.ResourceName}, paths: []string{s.File}})
		}
	case c.Vault != nil:
		for _, o := range c.Vault.Objects {
			out = append(out, optionalEntry{names: []string{o.ObjectName}, id: o.ObjectName, ids: []string{o.ObjectName}, paths: []string{o.ObjectName}})
		}
	}
	return out
}

// splitList splits an annotation value at commas and newlines, trims each
// entry and drops empty ones.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseOptional sets c.Optional, c.KeepMissing and c.Annotations from the
// class's annotations. An entry that names no object of the class is
// refused, as is the annotation on a plugin class (whose objects only the
// plugin knows).
func parseOptional(c *Class, annotations map[string]string) error {
	p := &parser{class: c.Key(), provider: c.Provider}
	field := func(a string) string { return "metadata.annotations[" + a + "]" }
	list, hasList := annotations[AnnotationOptionalObjects]
	onDelete, hasOnDelete := annotations[AnnotationOptionalOnDelete]
	if !hasList && !hasOnDelete {
		return nil
	}
	c.Annotations = map[string]string{}
	if hasList {
		c.Annotations[AnnotationOptionalObjects] = list
	}
	if hasOnDelete {
		c.Annotations[AnnotationOptionalOnDelete] = onDelete
	}
	switch v := strings.TrimSpace(onDelete); v {
	case "", OnDeleteRemove:
	case OnDeleteKeep:
		c.KeepMissing = true
	default:
		return p.errf(field(AnnotationOptionalOnDelete), "%q is neither %q nor %q", v, OnDeleteRemove, OnDeleteKeep)
	}
	names := splitList(list)
	if len(names) == 0 {
		if hasOnDelete {
			c.Warnings = append(c.Warnings, fmt.Sprintf("SecretProviderClass %s: %s: has no effect without %s", c.Key(), field(AnnotationOptionalOnDelete), AnnotationOptionalObjects))
		}
		return nil
	}
	if !c.BuiltIn() {
		return p.errf(field(AnnotationOptionalObjects), "applies to the built-in providers (aws, azure, gcp, vault) only; provider %q's objects are known to its plugin alone", c.Provider)
	}
	entries := c.optionalEntries()
	// One index, so that parsing is linear in the names and the objects
	// (every tenant's class is parsed by the shared processes).
	byName := map[string][]int{}
	for i, e := range entries {
		for _, n := range e.names {
			if n != "" && !slices.Contains(byName[n], i) {
				byName[n] = append(byName[n], i)
			}
		}
	}
	c.Optional = map[string][]string{}
	for _, n := range names {
		idx, found := byName[n]
		if !found {
			return p.errf(field(AnnotationOptionalObjects), "%q names no object of the class (its objects: %s)", truncate(n, maxQuoted), knownNames(entries))
		}
		for _, i := range idx {
			c.Optional[entries[i].id] = entries[i].ids
		}
	}
	return nil
}

// knownNames lists the names the objects answer to, for a denial, cut at
// about maxQuoted bytes.
func knownNames(entries []optionalEntry) string {
	var b strings.Builder
	for i, e := range entries {
		if b.Len() > maxQuoted {
			fmt.Fprintf(&b, ", … (%d more)", len(entries)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strings.Join(slices.DeleteFunc(slices.Clone(e.names), func(s string) bool { return s == "" }), " or "))
	}
	return b.String()
}

// truncate cuts s to at most n bytes (at a rune boundary), marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
