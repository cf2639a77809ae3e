package spc

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
	"sigs.k8s.io/yaml"
)

// AWS object types.
const (
	AWSSecretsManager = "secretsmanager"
	AWSSSMParameter   = "ssmparameter"
)

// AWS is the parameters of provider "aws", as the upstream AWS provider
// reads them.
type AWS struct {
	Objects []AWSObject
	// Region is the primary region; empty means the agent's environment.
	Region string
	// FailoverRegion is tried when the primary region fails.
	FailoverRegion string
	// PathTranslation replaces "/" in file names; 0 when translation is off.
	PathTranslation rune
	// UsePodIdentity selects EKS Pod Identity instead of IRSA.
	UsePodIdentity bool
	// PreferredAddressType is "ipv4", "ipv6" or "auto" (Pod Identity agent).
	PreferredAddressType string
}

// AWSObject is one entry of the "objects" list.
type AWSObject struct {
	ObjectName         string             `json:"objectName"`
	ObjectType         string             `json:"objectType"`
	ObjectAlias        string             `json:"objectAlias"`
	ObjectVersion      string             `json:"objectVersion"`
	ObjectVersionLabel string             `json:"objectVersionLabel"`
	FilePermissionText string             `json:"filePermission"`
	JMESPath           []AWSJMESPath      `json:"jmesPath"`
	FailoverObject     *AWSFailoverObject `json:"failoverObject"`

	// FilePermission is the parsed filePermission; zero means default.
	FilePermission fs.FileMode `json:"-"`
	// ExactMode means FilePermission is written as it is, zero included
	// ("0000" is written 0000, as upstream writes it).
	ExactMode bool `json:"-"`
	// FileName is the file written, after path translation.
	FileName string `json:"-"`
	// ARNRegion is the region of an ARN objectName, empty for names.
	ARNRegion string `json:"-"`
}

// AWSJMESPath extracts one JSON field of the secret into its own file.
type AWSJMESPath struct {
	Path               string `json:"path"`
	ObjectAlias        string `json:"objectAlias"`
	FilePermissionText string `json:"filePermission"`

	FilePermission fs.FileMode `json:"-"`
	ExactMode      bool        `json:"-"`
	FileName       string      `json:"-"`
}

// AWSFailoverObject names the object to read in the failover region.
type AWSFailoverObject struct {
	ObjectName         string `json:"objectName"`
	ObjectVersion      string `json:"objectVersion"`
	ObjectVersionLabel string `json:"objectVersionLabel"`
}

var (
	awsFilePerm = regexp.MustCompile(`^[0-7]{4}$`)
	awsBadPath  = regexp.MustCompile(`(/\.\./)|(^\.\./)|(/\.\.$)`)
)

func parseAWS(p *parser) (*AWS, error) {
	a := &AWS{}
	// The AWS provider uses region and failoverRegion as written: a padded
	// value never equals an ARN's region and names no AWS endpoint, so
	// every upstream mount of such a class fails. Refused here.
	for _, k := range []string{"region", "failoverRegion"} {
		if v := p.get(k); v != strings.TrimSpace(v) {
			return nil, p.errf("parameters."+k, "%q has surrounding spaces, which the AWS provider does not remove; write %q", v, strings.TrimSpace(v))
		}
	}
	a.Region, a.FailoverRegion = p.get("region"), p.get("failoverRegion")
	if a.FailoverRegion != "" && a.FailoverRegion == a.Region {
		return nil, p.errf("parameters.failoverRegion", "%q is the same as the primary region", a.FailoverRegion)
	}
	// As upstream: empty is "_", "false" in any ASCII case turns
	// translation off, anything else must be exactly one byte (a
	// multi-byte character such as "é" is refused, as upstream refuses it).
	switch pt := p.get("pathTranslation"); {
	case pt == "":
		a.PathTranslation = '_'
	case strings.ToLower(pt) == "false":
		a.PathTranslation = 0
	case len(pt) == 1 && pt[0] < 0x80:
		// One byte; a lone byte above 0x7f is not text (and cannot come
		// through the API server), so it is refused with the rest.
		a.PathTranslation = rune(pt[0])
	default:
		return nil, p.errf("parameters.pathTranslation", "must be \"False\" or a single one-byte character, got %q (%d bytes)", pt, len(pt))
	}
	var err error
	// The AWS provider parses the value as written (no trimming), so a
	// padded " true" fails every upstream mount: refused here at admission.
	if v := p.get("usePodIdentity"); v != strings.TrimSpace(v) {
		return nil, p.errf("parameters.usePodIdentity", "%q has surrounding spaces, which the AWS provider refuses; write \"true\" or \"false\"", v)
	}
	if a.UsePodIdentity, err = p.boolParam("usePodIdentity"); err != nil {
		return nil, err
	}
	// Upstream lower-cases the value as written and falls back on auto
	// for anything it does not know.
	switch raw := p.get("preferredAddressType"); strings.ToLower(raw) {
	case "ipv4", "ipv6":
		a.PreferredAddressType = strings.ToLower(raw)
	case "", "auto":
		a.PreferredAddressType = "auto"
	default:
		a.PreferredAddressType = "auto"
		p.warnf("parameters.preferredAddressType", "%q is not ipv4, ipv6 or auto; as upstream, auto is used (the Pod Identity agent's IPv4 address, then IPv6)", raw)
	}

	raw := p.get("objects")
	var entries []*AWSObject
	if err := yaml.Unmarshal([]byte(raw), &entries); err != nil {
		return nil, p.errf("parameters.objects", "is not a YAML list of objects: %v", err)
	}
	if entries == nil {
		// Missing, blank or null: the upstream provider reads no objects
		// and mounts an empty volume. An explicit empty list
		// (objects: "[]") does the same without a warning.
		p.warnf("parameters.objects", "is missing or empty; as upstream, the volume is mounted with no files (write objects: \"[]\" if that is intended)")
	}
	byName := map[string]*AWSObject{}
	aliases := map[string]bool{}
	for i, o := range entries {
		field := fmt.Sprintf("parameters.objects[%d]", i)
		if o == nil {
			return nil, p.errf(field, "is empty")
		}
		if err := validateAWSObject(p, a, o, field); err != nil {
			return nil, err
		}
		// The upstream duplicate rule compares an object with the last
		// earlier one of the same objectName only.
		if prev, ok := byName[o.ObjectName]; ok {
			if msg := awsDuplicate(prev, o); msg != "" {
				return nil, p.errf(field+".objectName", "duplicate object name %q: %s", o.ObjectName, msg)
			}
		}
		byName[o.ObjectName] = o
		// Aliases (of objects and of jmesPath entries) are compared as
		// written, not with object names: an alias equal to another
		// object's name is served, the later file winning.
		if o.ObjectAlias != "" {
			if aliases[o.ObjectAlias] {
				return nil, p.errf(field+".objectAlias", "duplicate object alias %q", o.ObjectAlias)
			}
			aliases[o.ObjectAlias] = true
		}
		for j, jp := range o.JMESPath {
			if aliases[jp.ObjectAlias] {
				return nil, p.errf(fmt.Sprintf("%s.jmesPath[%d].objectAlias", field, j), "duplicate object alias %q", jp.ObjectAlias)
			}
			aliases[jp.ObjectAlias] = true
		}
		a.Objects = append(a.Objects, *o)
	}
	for i, o := range a.Objects {
		field := fmt.Sprintf("parameters.objects[%d]", i)
		if o.ObjectAlias != "" {
			p.file(o.FileName, field+".objectAlias")
		} else {
			p.file(o.FileName, field+".objectName")
		}
		for j, jp := range o.JMESPath {
			p.file(jp.FileName, fmt.Sprintf("%s.jmesPath[%d].objectAlias", field, j))
		}
	}
	return a, nil
}

func validateAWSObject(p *parser, a *AWS, o *AWSObject, field string) error {
	if o.ObjectName == "" {
		return p.errf(field+".objectName", "is required")
	}
	// The objectType as written: the failover object is checked against
	// it, not against the type an ARN implies, as upstream does.
	givenType := o.ObjectType
	typ, region, key, err := awsTypeOf(o.ObjectName, givenType)
	if err != nil {
		return p.errf(field+"."+key, "%v", err)
	}
	if err := awsCheckARNRegion(o.ObjectName, region, a.Region, "region"); err != nil {
		return p.errf(field+".objectName", "%v", err)
	}
	o.ObjectType, o.ARNRegion = typ, region
	if typ == AWSSSMParameter && o.ObjectVersion != "" && o.ObjectVersionLabel != "" {
		return p.errf(field+".objectVersionLabel", "an ssmparameter cannot set both objectVersion and objectVersionLabel")
	}
	// Upstream sends such a name as it is (GetParameters reads the part
	// after ':' as a version or label) and then finds no object for the
	// answer, which crashes the provider: refused here.
	if typ == AWSSSMParameter && strings.Contains(o.ObjectName, ":") && !strings.HasPrefix(o.ObjectName, "arn:") {
		return p.errf(field+".objectName", "%q contains ':'; select versions with objectVersion or objectVersionLabel, not in the name", o.ObjectName)
	}
	name, nameField := o.ObjectAlias, field+".objectAlias"
	if name == "" {
		name, nameField = o.ObjectName, field+".objectName"
	}
	o.FileName = awsTranslate(name, a.PathTranslation)
	if awsBadPath.MatchString(o.FileName) {
		return p.errf(nameField, "file name %q contains \"..\"", o.FileName)
	}
	if o.FilePermissionText != "" {
		if o.FilePermission, o.ExactMode, err = awsPerm(p, field+".filePermission", o.FilePermissionText); err != nil {
			return err
		}
	}
	for j := range o.JMESPath {
		jp := &o.JMESPath[j]
		jf := fmt.Sprintf("%s.jmesPath[%d]", field, j)
		if jp.Path == "" {
			return p.errf(jf+".path", "is required")
		}
		if jp.ObjectAlias == "" {
			return p.errf(jf+".objectAlias", "is required")
		}
		if jp.FilePermissionText != "" {
			if jp.FilePermission, jp.ExactMode, err = awsPerm(p, jf+".filePermission", jp.FilePermissionText); err != nil {
				return err
			}
		} else {
			jp.FilePermission, jp.ExactMode = o.FilePermission, o.ExactMode
		}
		// Upstream compiles the expression only at the mount, which then
		// fails; it is decided here, by the function the fetch uses.
		if _, err := CompileAWSJMESPath(jp.Path); err != nil {
			return p.errf(jf+".path", "%v", err)
		}
		jp.FileName = awsTranslate(jp.ObjectAlias, a.PathTranslation)
	}
	if f := o.FailoverObject; f != nil && f.ObjectName != "" {
		ff := field + ".failoverObject"
		if o.ObjectAlias == "" {
			return p.errf(field+".objectAlias", "is required for an object with a failoverObject")
		}
		if a.FailoverRegion == "" {
			return p.errf(ff, "is only allowed when parameters.failoverRegion is set")
		}
		ftyp, fregion, key, err := awsTypeOf(f.ObjectName, givenType)
		if err != nil {
			if key == "objectType" {
				// The object's objectType, checked against the failover
				// object's name.
				return p.errf(ff+".objectName", "objectType %v", err)
			}
			return p.errf(ff+".objectName", "%v", err)
		}
		if err := awsCheckARNRegion(f.ObjectName, fregion, a.FailoverRegion, "failoverRegion"); err != nil {
			return p.errf(ff+".objectName", "%v", err)
		}
		// Upstream admits a failover ARN of the other service when the
		// object has no objectType, then asks the wrong service for it
		// in the failover region; refused here (docs/providers/aws.md).
		if ftyp != typ {
			return p.errf(ff+".objectName", "is a %s but the object is a %s", ftyp, typ)
		}
		if typ == AWSSSMParameter && f.ObjectVersion != "" && f.ObjectVersionLabel != "" {
			return p.errf(ff+".objectVersionLabel", "an ssmparameter cannot set both objectVersion and objectVersionLabel")
		}
		if f.ObjectVersion != o.ObjectVersion {
			return p.errf(ff+".objectVersion", "must equal the object's objectVersion (%q), got %q", o.ObjectVersion, f.ObjectVersion)
		}
	}
	return nil
}

// awsCheckARNRegion applies upstream's rule that an ARN's region is the
// region it is read in (want, the parameter named key). An ARN without a
// region never matches; with want empty (the environment's region), the
// fetch checks it.
func awsCheckARNRegion(name, arnRegion, want, key string) error {
	if !strings.HasPrefix(name, "arn:") {
		return nil
	}
	if arnRegion == "" {
		return fmt.Errorf("the ARN %q has no region; it must be the %s the object is read in", name, key)
	}
	if want != "" && arnRegion != want {
		return fmt.Errorf("ARN region %q does not match %s %q", arnRegion, key, want)
	}
	return nil
}

// CompileAWSJMESPath compiles a jmesPath expression. Admission and the
// fetch both call it, so an expression admitted is one the fetch can
// evaluate. The error describes the expression only, never a value.
func CompileAWSJMESPath(expr string) (j *jmespath.JMESPath, err error) {
	defer func() {
		// The parser is third-party code run on user input in the
		// webhook: a panic is an unparsable expression, not a crash.
		if r := recover(); r != nil {
			j, err = nil, fmt.Errorf("invalid JMES path %q", expr)
		}
	}()
	j, err = jmespath.Compile(expr)
	if err != nil {
		var se jmespath.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JMES path %q: %s", expr, se.Error())
		}
		return nil, fmt.Errorf("invalid JMES path %q", expr)
	}
	return j, nil
}

// awsTypeOf derives the object type from an ARN name or checks the given
// one, and returns the ARN's region. A failure names the key at fault
// (objectType or objectName).
func awsTypeOf(name, objectType string) (typ, region, key string, err error) {
	if objectType != "" && objectType != AWSSecretsManager && objectType != AWSSSMParameter {
		return "", "", "objectType", fmt.Errorf("must be %q or %q, got %q", AWSSecretsManager, AWSSSMParameter, objectType)
	}
	if !strings.HasPrefix(name, "arn:") {
		if objectType == "" {
			return "", "", "objectType", fmt.Errorf("is required when objectName %q is not a full ARN", name)
		}
		return objectType, "", "", nil
	}
	parts := strings.SplitN(name, ":", 6)
	if len(parts) != 6 || parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return "", "", "objectName", fmt.Errorf("%q is not a valid ARN (arn:partition:service:region:account:resource)", name)
	}
	var arnType string
	switch parts[2] {
	case "secretsmanager":
		arnType = AWSSecretsManager
	case "ssm", "ssmparameter":
		arnType = AWSSSMParameter
	default:
		return "", "", "objectName", fmt.Errorf("the ARN's service %q is neither secretsmanager nor ssm", parts[2])
	}
	if objectType != "" && objectType != arnType {
		return "", "", "objectType", fmt.Errorf("%q does not match the ARN %q (a %s)", objectType, name, arnType)
	}
	return arnType, parts[3], "", nil
}

// awsPermHint explains the common mistake of an unquoted octal, which YAML
// 1.1 turns into a decimal number before the provider sees it.
func awsPermHint(s string) string {
	if _, err := strconv.Atoi(s); err == nil {
		return fmt.Sprintf(" (an unquoted octal such as 0600 reaches the provider as the number %s; quote it)", s)
	}
	return ""
}

// awsPerm parses a filePermission as upstream: exactly four octal digits
// (upstream's pattern), so "1777" is admitted; the writer keeps only the
// permission bits (specialMode warns), and a value with none is written
// 0000 as upstream writes it (exact), with a warning.
func awsPerm(p *parser, field, s string) (mode fs.FileMode, exact bool, err error) {
	if !awsFilePerm.MatchString(s) {
		return 0, false, p.errf(field, "must be a quoted 4-digit octal string such as \"0600\", got %q%s", s, awsPermHint(s))
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, false, p.errf(field, "%q is not octal", s)
	}
	m, err := p.specialMode(field, uint32(v))
	if err != nil {
		return 0, false, err
	}
	if m == 0 {
		p.warnf(field, zeroModeWarning, v)
		return 0, true, nil
	}
	return m, false, nil
}

// awsTranslate applies pathTranslation to a file name: with a character,
// every "/" becomes it; with translation off, leading "/" are dropped.
func awsTranslate(name string, r rune) string {
	if r == 0 {
		return strings.TrimLeft(name, "/")
	}
	return strings.ReplaceAll(name, "/", string(r))
}

// awsDuplicate reproduces the upstream rule for two entries with the same
// objectName: allowed unless they would be indistinguishable.
func awsDuplicate(prev, cur *AWSObject) string {
	pa, ca := prev.ObjectAlias != "", cur.ObjectAlias != ""
	pl, cl := prev.ObjectVersionLabel != "", cur.ObjectVersionLabel != ""
	switch {
	case pa && ca && !pl && !cl && prev.ObjectAlias == cur.ObjectAlias:
		return "same objectAlias and no objectVersionLabel"
	case !pa && !ca && pl && cl && prev.ObjectVersionLabel == cur.ObjectVersionLabel:
		return "no objectAlias and the same objectVersionLabel"
	case pa && ca && pl && cl && prev.ObjectAlias == cur.ObjectAlias && prev.ObjectVersionLabel == cur.ObjectVersionLabel:
		return "same objectAlias and objectVersionLabel"
	case !pa && !ca && !pl && !cl:
		return "no objectAlias and no objectVersionLabel"
	}
	return ""
}

func (a *AWS) files() []FileSpec {
	var out []FileSpec
	for _, o := range a.Objects {
		out = append(out, FileSpec{Path: o.FileName, Mode: o.FilePermission, ExactMode: o.ExactMode})
		for _, jp := range o.JMESPath {
			out = append(out, FileSpec{Path: jp.FileName, Mode: jp.FilePermission, ExactMode: jp.ExactMode})
		}
	}
	return out
}
