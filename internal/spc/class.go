// Package spc turns a SecretProviderClass into validated, typed parameters
// for the built-in providers, parsed exactly as the upstream providers read
// them (same keys, same YAML libraries, same typing of nested values), and
// proves that every file the class produces stays inside the volume.
//
// A class an upstream provider serves is admitted; where upstream's result
// looks like a mistake (setuid bits it drops, a file written mode 0000) the
// class is admitted with a warning naming the field. A class upstream
// refuses, or that would write outside the volume, is rejected with a
// message naming the class and the field.
package spc

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
)

// Names of the built-in providers.
const (
	ProviderAWS   = "aws"
	ProviderAzure = "azure"
	ProviderGCP   = "gcp"
	ProviderVault = "vault"
)

// Class is a parsed SecretProviderClass. Exactly one of AWS, Azure, GCP and
// Vault is set for a built-in provider; none for a plugin provider.
type Class struct {
	Namespace string
	Name      string
	// Provider is spec.provider.
	Provider string
	// Parameters is spec.parameters as given; kept for plugin forwarding
	// and for the configuration snapshot handed to the agent.
	Parameters map[string]string
	// SecretObjects is spec.secretObjects as given; the sync controller
	// validates it against Files.
	SecretObjects []*ssiv1.SecretObject

	// Warnings are allowed-but-dubious findings, for admission warnings.
	Warnings []string
	// CertRenewAt is parameters.ssiCertRenewAt (ParamCertRenewAt); zero
	// means the default.
	CertRenewAt float64
	// Optional maps the provider object ID of each optional object
	// (AnnotationOptionalObjects) to the IDs of every object it yields
	// (an AWS object's jmesPath files, an Azure object's version
	// history); nil when none is optional.
	Optional map[string][]string
	// KeepMissing keeps the last files of an optional object that
	// disappeared (AnnotationOptionalOnDelete: keep) instead of removing
	// them.
	KeepMissing bool
	// Annotations are the class annotations the parser read (those
	// above), for the configuration snapshot handed to the agent; nil when
	// the class has none of them.
	Annotations map[string]string

	AWS   *AWS
	Azure *Azure
	GCP   *GCP
	Vault *Vault
}

// Key is "namespace/name".
func (c *Class) Key() string { return c.Namespace + "/" + c.Name }

// BuiltIn reports whether a built-in provider serves the class.
func (c *Class) BuiltIn() bool {
	return c.AWS != nil || c.Azure != nil || c.GCP != nil || c.Vault != nil
}

// FileSpec is a file (or, for Azure version history, a directory of
// numbered files) the class produces.
type FileSpec struct {
	// Path is relative to the volume.
	Path string
	// Mode is the file's permission; zero means the mount's default
	// unless ExactMode is set.
	Mode fs.FileMode
	// ExactMode means Mode is written as it is, zero included (0000), as
	// upstream writes it (an Azure filePermission that does not parse).
	ExactMode bool
	// Dir is true when Path is a directory of version files "<Path>/<i>".
	Dir bool
}

// Files lists what the class writes, sorted by path. Where two objects
// produce the same path only the later one is listed, as only its file is
// written (provider.LastWriterWins; admission warns about it). Plugin
// classes produce files only the plugin knows, so the list is empty.
func (c *Class) Files() []FileSpec {
	// rawFiles builds a new slice at each call, so sorting it in place is
	// safe.
	out := atomicdir.LastByPath(c.rawFiles(), func(f FileSpec) string { return f.Path })
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// rawFiles lists the files of every object in the class's order,
// duplicates included.
func (c *Class) rawFiles() []FileSpec {
	var out []FileSpec
	switch {
	case c.AWS != nil:
		out = c.AWS.files()
	case c.Azure != nil:
		out = c.Azure.files()
	case c.GCP != nil:
		out = c.GCP.files()
	case c.Vault != nil:
		out = c.Vault.files()
	}
	return out
}

// Error is a parse failure: it names the class, provider, field and problem.
type Error struct {
	Class    string
	Provider string
	Field    string
	Problem  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("SecretProviderClass %s (provider %s): %s: %s", e.Class, e.Provider, e.Field, e.Problem)
}

// Parse validates obj and returns its typed form.
func Parse(obj *ssiv1.SecretProviderClass) (*Class, error) {
	c, err := ParseAnnotated(obj.Namespace, obj.Name, string(obj.Spec.Provider), obj.Spec.Parameters, obj.Annotations)
	if err != nil {
		return nil, err
	}
	c.SecretObjects = obj.Spec.SecretObjects
	return c, nil
}

// ParseSpec validates a class given by its parts, without annotations
// (see ParseAnnotated).
func ParseSpec(namespace, name, provider string, params map[string]string) (*Class, error) {
	c := &Class{Namespace: namespace, Name: name, Provider: provider, Parameters: params}
	p := &parser{class: c.Key(), provider: provider, params: params}
	if strings.TrimSpace(provider) == "" {
		return nil, p.errf("spec.provider", "is empty; set it to aws, azure, gcp, vault or the name of a provider plugin")
	}
	if !ValidProviderName(provider) {
		return nil, p.errf("spec.provider", "%q is not a valid provider name (letters, digits, '-' and '_', at most 30)", provider)
	}
	if err := parseCertRenewAt(p, c); err != nil {
		return nil, err
	}
	var err error
	switch provider {
	case ProviderAWS:
		c.AWS, err = parseAWS(p)
	case ProviderAzure:
		c.Azure, err = parseAzure(p)
	case ProviderGCP:
		c.GCP, err = parseGCP(p)
	case ProviderVault:
		c.Vault, err = parseVault(p)
	default:
		// A provider that is not built in is forwarded to its plugin over
		// the upstream gRPC protocol; its parameters are the plugin's.
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := p.checkFiles(c.rawFiles()); err != nil {
		return nil, err
	}
	c.Warnings = p.warnings
	return c, nil
}

// ValidProviderName is the upstream rule for provider names, which become
// plugin socket file names: 1 to 30 of [a-zA-Z0-9_-].
func ValidProviderName(s string) bool {
	if s == "" || len(s) > 30 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// parser carries the context every error message names.
type parser struct {
	class    string
	provider string
	params   map[string]string
	// fields maps produced file paths to the fields that produced them,
	// in the class's order, for duplicate messages.
	fields   map[string][]string
	warnings []string
}

func (p *parser) warnf(field, format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf("SecretProviderClass %s: %s: %s", p.class, field, fmt.Sprintf(format, args...)))
}

func (p *parser) errf(field, format string, args ...any) error {
	// YAML errors span lines; keep messages on one line for events and logs.
	problem := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	return &Error{Class: p.class, Provider: p.provider, Field: field, Problem: problem}
}

func (p *parser) get(key string) string { return p.params[key] }

func (p *parser) has(key string) bool { _, ok := p.params[key]; return ok }

// boolParam parses an optional boolean parameter the way the upstream
// providers do (strconv.ParseBool on the trimmed value; empty is false).
func (p *parser) boolParam(key string) (bool, error) {
	v := strings.TrimSpace(p.params[key])
	if v == "" {
		return false, nil
	}
	switch v {
	case "1", "t", "T", "TRUE", "true", "True":
		return true, nil
	case "0", "f", "F", "FALSE", "false", "False":
		return false, nil
	}
	return false, p.errf("parameters."+key, "%q is not a boolean (use \"true\" or \"false\")", v)
}

// file records a produced path for the duplicate check.
func (p *parser) file(path, field string) {
	if p.fields == nil {
		p.fields = map[string][]string{}
	}
	p.fields[path] = append(p.fields[path], field)
}

// field is the first field that produced path, for error messages.
func (p *parser) field(path string) string {
	if fs := p.fields[path]; len(fs) > 0 {
		return fs[0]
	}
	return "objects"
}

// checkFiles proves every produced path stays in the volume. Two objects
// producing exactly the same path are admitted with a warning, because the
// upstream driver serves such a class (the later object's file wins); a
// path that needs another object's file to be a directory cannot be
// written and is denied.
func (p *parser) checkFiles(files []FileSpec) error {
	count := map[string]int{}
	dir := map[string]bool{}
	var order []string
	for _, f := range files {
		if err := atomicdir.ValidatePath(f.Path); err != nil {
			return p.errf(p.field(f.Path), "file name is not allowed: %v", err)
		}
		if count[f.Path] == 0 {
			order = append(order, f.Path)
			dir[f.Path] = f.Dir
		} else if dir[f.Path] != f.Dir {
			return p.errf(p.field(f.Path), "%q is both a file and a directory of versions (objectVersionHistory); one of them cannot be written", f.Path)
		}
		count[f.Path]++
	}
	for _, path := range order {
		for d := parentOf(path); d != ""; d = parentOf(d) {
			if count[d] == 0 {
				continue
			}
			if dir[d] {
				// A directory of versions "<d>/<i>" holds other files
				// beside its numbered ones, as upstream writes them.
				first, _, _ := strings.Cut(path[len(d)+1:], "/")
				if !allDigits(first) {
					continue
				}
				return p.errf(p.field(path), "file %q is inside the directory of versions %q that %s writes (%q is one of its version file names)", path, d, p.field(d), d+"/"+first)
			}
			return p.errf(p.field(path), "file %q would need %q to be a directory, but %s writes a file there", path, d, p.field(d))
		}
	}
	for _, path := range order {
		if count[path] < 2 {
			continue
		}
		fields := p.fields[path]
		if len(fields) < 2 {
			fields = []string{"objects"}
		}
		served := fields[len(fields)-1]
		p.warnf(served, "file name %q is produced by %d objects (%s); as upstream, only the last one's file (%s) is written and the others are not served",
			path, count[path], strings.Join(fields, ", "), served)
	}
	return nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// zeroModeWarning is the admission warning for a mode with no permission
// bits (0, 01000), which is written 0000 as the upstream providers write it;
// its argument is the mode as written.
const zeroModeWarning = "%#o leaves no permission bits; the file is written with mode 0000 (readable by root only), as the upstream provider writes it"

// specialMode turns a YAML mode value into the permission the upstream
// providers end up with: the upstream driver's writer hands the value to
// os.WriteFile and os.Chmod as an os.FileMode, which keep only the low nine
// bits of a Unix mode, so the setuid, setgid and sticky bits written in octal
// (01777, 02755, 04600) are dropped. Such a value is admitted with a warning
// naming field; anything above 07777 is not a Unix mode (upstream would
// reinterpret some of those bits as Go's setuid/setgid/sticky flags) and is
// refused.
func (p *parser) specialMode(field string, v uint32) (fs.FileMode, error) {
	if v > 0o7777 {
		return 0, p.errf(field, "must be a permission between 0000 and 07777 (a YAML integer such as 0600), got %#o", v)
	}
	m := fs.FileMode(v) & fs.ModePerm
	if v > 0o777 {
		p.warnf(field, "%#o has setuid, setgid or sticky bits, which are dropped as upstream drops them: the file is written with mode %#o", v, m)
	}
	return m, nil
}
