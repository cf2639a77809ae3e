package spc

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// GCP auth modes.
const (
	GCPAuthPodADC      = "pod-adc"
	GCPAuthProviderADC = "provider-adc"
)

// GCP resource kinds.
const (
	GCPGlobalSecret     = "secret"
	GCPRegionalSecret   = "regional-secret"
	GCPParameterVersion = "parameter"
)

// GCP is the parameters of provider "gcp", as the upstream Google Secret
// Manager provider reads them.
type GCP struct {
	Secrets []GCPSecret
	// Auth is "pod-adc" (the pod's workload identity, the default) or
	// "provider-adc" (the credentials of the process that fetches).
	Auth string
	// AuthSet reports that parameters.auth was given: upstream uses a
	// nodePublishSecretRef's key.json only when it was not.
	AuthSet bool
}

// GCPSecret is one entry of the "secrets" list.
type GCPSecret struct {
	ResourceName   string `yaml:"resourceName"`
	FileName       string `yaml:"fileName"`
	Path           string `yaml:"path"`
	Mode           *int32 `yaml:"mode"`
	ExtractJSONKey string `yaml:"extractJSONKey"`
	ExtractYAMLKey string `yaml:"extractYAMLKey"`

	// Kind is GCPGlobalSecret, GCPRegionalSecret or GCPParameterVersion.
	Kind string `yaml:"-"`
	// Location is the region of a regional resource.
	Location string `yaml:"-"`
	// File is path, or fileName when path is empty.
	File string `yaml:"-"`
	// FilePermission is the parsed mode; zero means default.
	FilePermission fs.FileMode `yaml:"-"`
	// ExactMode means FilePermission is written as it is, zero included:
	// a mode with no permission bits is written 0000, as upstream writes it.
	ExactMode bool `yaml:"-"`
}

var (
	gcpGlobalSecret   = regexp.MustCompile(`^projects/[^/]+/secrets/[^/]+/versions/[^/]+$`)
	gcpRegionalSecret = regexp.MustCompile(`^projects/[^/]+/locations/([^/]+)/secrets/[^/]+/versions/[^/]+$`)
	gcpParameter      = regexp.MustCompile(`^projects/[^/]+/locations/([^/]+)/parameters/[^/]+/versions/[^/]+$`)
)

func parseGCP(p *parser) (*GCP, error) {
	g := &GCP{AuthSet: p.get("auth") != ""}
	switch a := p.get("auth"); a {
	case "", GCPAuthPodADC:
		g.Auth = GCPAuthPodADC
	case GCPAuthProviderADC:
		g.Auth = GCPAuthProviderADC
	default:
		return nil, p.errf("parameters.auth", "must be pod-adc or provider-adc, got %q", a)
	}
	if !p.has("secrets") || strings.TrimSpace(p.get("secrets")) == "" {
		return nil, p.errf("parameters.secrets", "is required")
	}
	var entries []GCPSecret
	if err := yaml.Unmarshal([]byte(p.get("secrets")), &entries); err != nil {
		return nil, p.errf("parameters.secrets", "is not a YAML list of secrets: %v", err)
	}
	// An explicit empty list (secrets: "[]") is a class with no secrets:
	// the volume stays empty, and the mount does not fail.
	for i := range entries {
		s := &entries[i]
		field := fmt.Sprintf("parameters.secrets[%d]", i)
		if s.ResourceName == "" {
			return nil, p.errf(field+".resourceName", "is required")
		}
		switch {
		case gcpGlobalSecret.MatchString(s.ResourceName):
			s.Kind = GCPGlobalSecret
		case gcpRegionalSecret.MatchString(s.ResourceName):
			s.Kind = GCPRegionalSecret
			s.Location = gcpRegionalSecret.FindStringSubmatch(s.ResourceName)[1]
		case gcpParameter.MatchString(s.ResourceName):
			s.Kind = GCPParameterVersion
			s.Location = gcpParameter.FindStringSubmatch(s.ResourceName)[1]
		default:
			return nil, p.errf(field+".resourceName", "%q is not projects/P/secrets/S/versions/V, projects/P/locations/L/secrets/S/versions/V or projects/P/locations/L/parameters/N/versions/V", s.ResourceName)
		}
		if len(s.Location) > 30 {
			return nil, p.errf(field+".resourceName", "location %q is longer than 30 characters", s.Location)
		}
		if err := checkGCPResource(s); err != nil {
			return nil, p.errf(field+".resourceName", "%v", err)
		}
		s.File = s.Path
		fileField := field + ".path"
		if s.File == "" {
			s.File, fileField = s.FileName, field+".fileName"
		}
		if s.File == "" {
			return nil, p.errf(field+".path", "is required (path or fileName)")
		}
		if s.Mode != nil {
			if *s.Mode < 0 {
				return nil, p.errf(field+".mode", "must be a permission between 0000 and 07777 (a YAML integer such as 0600), got %d", *s.Mode)
			}
			m, err := p.specialMode(field+".mode", uint32(*s.Mode))
			if err != nil {
				return nil, err
			}
			if m == 0 {
				// Upstream writes the file with mode 0000, readable by root
				// only; so is it here, with a warning.
				p.warnf(field+".mode", zeroModeWarning, *s.Mode)
				s.ExactMode = true
			}
			s.FilePermission = m
		}
		if s.ExtractJSONKey != "" && s.ExtractYAMLKey != "" {
			return nil, p.errf(field+".extractJSONKey", "cannot be set together with extractYAMLKey")
		}
		p.file(s.File, fileField)
	}
	g.Secrets = entries
	return g, nil
}

// gcpLocationLabel is a location as Google names them ("global",
// "us-east1", "eu"): one DNS label.
var gcpLocationLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// checkGCPResource refuses what a resource name would carry into a host
// name or a URL beyond its own place. A regional resource's location
// becomes part of the endpoint's host name
// (secretmanager.<l>.rep.googleapis.com, parametermanager.<l>.rep.googleapis.com),
// so it must be one DNS label: "x@attacker.example#" would otherwise send
// the request, and the pod's access token with it, to another host
// (docs/security.md). A Parameter Manager name is expanded into the REST
// request path unescaped, so a segment holding '?', '#', '%' or white
// space, or a "." or ".." segment, would change the request. Google names
// none of its resources so; upstream sends them and fails at the fetch.
func checkGCPResource(s *GCPSecret) error {
	if s.Location != "" && !gcpLocationLabel.MatchString(s.Location) {
		return fmt.Errorf("location %q is not a Google Cloud location (lower-case letters, digits and hyphens, such as us-east1 or global)", s.Location)
	}
	if s.Kind != GCPParameterVersion {
		return nil
	}
	for _, seg := range strings.Split(s.ResourceName, "/") {
		if seg == "." || seg == ".." || strings.ContainsFunc(seg, func(r rune) bool {
			return r == '?' || r == '#' || r == '%' || r <= ' ' || r == 0x7f
		}) {
			return fmt.Errorf("%q: the segment %q is not a Parameter Manager resource id (it would change the request URL)", s.ResourceName, seg)
		}
	}
	return nil
}

// IsGlobalParameter reports whether the entry is a Parameter Manager
// version in location "global", served by the global endpoint.
func (s *GCPSecret) IsGlobalParameter() bool {
	return s.Kind == GCPParameterVersion && s.Location == "global"
}

// Project returns the project segment of the resource name.
func (s *GCPSecret) Project() string {
	parts := strings.SplitN(s.ResourceName, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func (g *GCP) files() []FileSpec {
	var out []FileSpec
	for _, s := range g.Secrets {
		out = append(out, FileSpec{Path: s.File, Mode: s.FilePermission, ExactMode: s.ExactMode})
	}
	return out
}
