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
}

var (
	gcpGlobalSecret   = regexp.MustCompile(`^projects/[^/]+/secrets/[^/]+/versions/[^/]+$`)
	gcpRegionalSecret = regexp.MustCompile(`^projects/[^/]+/locations/([^/]+)/secrets/[^/]+/versions/[^/]+$`)
	gcpParameter      = regexp.MustCompile(`^projects/[^/]+/locations/([^/]+)/parameters/[^/]+/versions/[^/]+$`)
)

func parseGCP(p *parser) (*GCP, error) {
	g := &GCP{}
	switch a := p.get("auth"); a {
	case "", GCPAuthPodADC:
		g.Auth = GCPAuthPodADC
	case GCPAuthProviderADC:
		g.Auth = GCPAuthProviderADC
	default:
		return nil, p.errf("parameters.auth", "must be pod-adc or provider-adc, got %q", a)
	}
	if !p.has("secrets") {
		return nil, p.errf("parameters.secrets", "is required")
	}
	var entries []GCPSecret
	if err := yaml.Unmarshal([]byte(p.get("secrets")), &entries); err != nil {
		return nil, p.errf("parameters.secrets", "is not a YAML list of secrets: %v", err)
	}
	if len(entries) == 0 {
		return nil, p.errf("parameters.secrets", "is empty; list at least one secret")
	}
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
				// Upstream writes the file with mode 0000 (unreadable even
				// by its owner); the mount's default is served instead.
				p.warnf(field+".mode", "%#o leaves no permission bits; the file is written with the mount's default mode 0644 (the upstream provider writes it 0000)", *s.Mode)
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
		out = append(out, FileSpec{Path: s.File, Mode: s.FilePermission})
	}
	return out
}
