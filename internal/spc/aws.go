package spc

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

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
	a := &AWS{
		Region:         strings.TrimSpace(p.get("region")),
		FailoverRegion: strings.TrimSpace(p.get("failoverRegion")),
	}
	if a.FailoverRegion != "" && a.FailoverRegion == a.Region {
		return nil, p.errf("parameters.failoverRegion", "%q is the same as the primary region", a.FailoverRegion)
	}
	switch pt := p.get("pathTranslation"); {
	case pt == "":
		a.PathTranslation = '_'
	case strings.EqualFold(pt, "false"):
		a.PathTranslation = 0
	case len([]rune(pt)) == 1:
		a.PathTranslation = []rune(pt)[0]
	default:
		return nil, p.errf("parameters.pathTranslation", "must be \"False\" or a single character, got %q", pt)
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
	switch v := strings.ToLower(strings.TrimSpace(p.get("preferredAddressType"))); v {
	case "ipv4", "ipv6":
		a.PreferredAddressType = v
	case "", "auto":
		a.PreferredAddressType = "auto"
	default:
		return nil, p.errf("parameters.preferredAddressType", "must be ipv4, ipv6 or auto, got %q", v)
	}

	raw := p.get("objects")
	if strings.TrimSpace(raw) == "" {
		return nil, p.errf("parameters.objects", "is empty; list at least one object")
	}
	var entries []*AWSObject
	if err := yaml.Unmarshal([]byte(raw), &entries); err != nil {
		return nil, p.errf("parameters.objects", "is not a YAML list of objects: %v", err)
	}
	// An explicit empty list (objects: "[]") is a class with no objects:
	// the volume stays empty, and the mount does not fail.
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
		if prev, ok := byName[o.ObjectName]; ok {
			if msg := awsDuplicate(prev, o); msg != "" {
				return nil, p.errf(field+".objectName", "duplicate object name %q: %s", o.ObjectName, msg)
			}
		}
		byName[o.ObjectName] = o
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
		p.file(o.FileName, field+".objectAlias")
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
	typ, region, err := awsTypeOf(o.ObjectName, o.ObjectType)
	if err != nil {
		return p.errf(field, "%v", err)
	}
	if region != "" && a.Region != "" && region != a.Region {
		return p.errf(field+".objectName", "ARN region %q does not match region %q", region, a.Region)
	}
	o.ObjectType, o.ARNRegion = typ, region
	if typ == AWSSSMParameter && o.ObjectVersion != "" && o.ObjectVersionLabel != "" {
		return p.errf(field, "an ssmparameter cannot set both objectVersion and objectVersionLabel")
	}
	if typ == AWSSSMParameter && strings.Contains(o.ObjectName, ":") && !strings.HasPrefix(o.ObjectName, "arn:") {
		return p.errf(field+".objectName", "%q contains ':'; select versions with objectVersion or objectVersionLabel, not in the name", o.ObjectName)
	}
	name := o.ObjectAlias
	if name == "" {
		name = o.ObjectName
	}
	o.FileName = awsTranslate(name, a.PathTranslation)
	if awsBadPath.MatchString(o.FileName) {
		return p.errf(field+".objectAlias", "file name %q contains \"..\"", o.FileName)
	}
	if o.FilePermissionText != "" {
		m, ok := awsPerm(o.FilePermissionText)
		if !ok {
			return p.errf(field+".filePermission", "must be a quoted 4-digit octal string such as \"0600\", got %q%s", o.FilePermissionText, awsPermHint(o.FilePermissionText))
		}
		o.FilePermission = m
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
			m, ok := awsPerm(jp.FilePermissionText)
			if !ok {
				return p.errf(jf+".filePermission", "must be a quoted 4-digit octal string such as \"0600\", got %q%s", jp.FilePermissionText, awsPermHint(jp.FilePermissionText))
			}
			jp.FilePermission = m
		} else {
			jp.FilePermission = o.FilePermission
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
		ftyp, fregion, err := awsTypeOf(f.ObjectName, typ)
		if err != nil {
			return p.errf(ff, "%v", err)
		}
		if ftyp != typ {
			return p.errf(ff+".objectName", "is a %s but the object is a %s", ftyp, typ)
		}
		if fregion != "" && fregion != a.FailoverRegion {
			return p.errf(ff+".objectName", "ARN region %q does not match failoverRegion %q", fregion, a.FailoverRegion)
		}
		if typ == AWSSSMParameter && f.ObjectVersion != "" && f.ObjectVersionLabel != "" {
			return p.errf(ff, "an ssmparameter cannot set both objectVersion and objectVersionLabel")
		}
		if f.ObjectVersion != o.ObjectVersion {
			return p.errf(ff+".objectVersion", "must equal the object's objectVersion (%q), got %q", o.ObjectVersion, f.ObjectVersion)
		}
	}
	return nil
}

// awsTypeOf derives the object type from an ARN name or checks the given
// one, and returns the ARN's region.
func awsTypeOf(name, objectType string) (typ, region string, err error) {
	if objectType != "" && objectType != AWSSecretsManager && objectType != AWSSSMParameter {
		return "", "", fmt.Errorf("objectType must be %q or %q, got %q", AWSSecretsManager, AWSSSMParameter, objectType)
	}
	if !strings.HasPrefix(name, "arn:") {
		if objectType == "" {
			return "", "", fmt.Errorf("objectType is required when objectName %q is not a full ARN", name)
		}
		return objectType, "", nil
	}
	parts := strings.SplitN(name, ":", 6)
	if len(parts) != 6 || parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return "", "", fmt.Errorf("objectName %q is not a valid ARN (arn:partition:service:region:account:resource)", name)
	}
	var arnType string
	switch parts[2] {
	case "secretsmanager":
		arnType = AWSSecretsManager
	case "ssm", "ssmparameter":
		arnType = AWSSSMParameter
	default:
		return "", "", fmt.Errorf("objectName ARN service %q is neither secretsmanager nor ssm", parts[2])
	}
	if objectType != "" && objectType != arnType {
		return "", "", fmt.Errorf("objectType %q does not match the ARN of %q", objectType, name)
	}
	return arnType, parts[3], nil
}

// awsPermHint explains the common mistake of an unquoted octal, which YAML
// 1.1 turns into a decimal number before the provider sees it.
func awsPermHint(s string) string {
	if _, err := strconv.Atoi(s); err == nil {
		return fmt.Sprintf(" (an unquoted octal such as 0600 reaches the provider as the number %s; quote it)", s)
	}
	return ""
}

func awsPerm(s string) (fs.FileMode, bool) {
	if !awsFilePerm.MatchString(s) {
		return 0, false
	}
	return octalString(s)
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
		out = append(out, FileSpec{Path: o.FileName, Mode: o.FilePermission})
		for _, jp := range o.JMESPath {
			out = append(out, FileSpec{Path: jp.FileName, Mode: jp.FilePermission})
		}
	}
	return out
}
