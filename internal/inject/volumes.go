package inject

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// ShorthandVolumeName is the volume the annotation shorthand adds.
const ShorthandVolumeName = "ssi-secrets"

// secretVolume is one secrets volume the agent fills.
type secretVolume struct {
	// name is the pod volume's name.
	name string
	// class is the parsed class, with the volume's attributes applied.
	class *spc.Class
	// nodePublishSecret is the Secret of csi.nodePublishSecretRef, if any.
	nodePublishSecret string
	// shorthand is set for the volume the annotation declares.
	shorthand *shorthand
	// cloud is the volume's identity (identity.Decide), set by newPlan.
	cloud identity.Cloud
	// templates are the class's resolved templates (render.Annotation),
	// compiled at admission and handed to the agent.
	templates []render.Template
}

// MaxTemplateBytesPerPod caps the text of the templates of all the secrets
// volumes of one pod: it travels to the agent in the agent configuration,
// an environment variable.
const MaxTemplateBytesPerPod = 256 << 10

// secretVolumes finds the secrets-store volumes of the pod, in volume order
// followed by the shorthand's, and parses their classes. Volumes of plugin
// providers are left to the node CSI driver, which forwards to the plugin.
func secretVolumes(in *Input, s *settings) ([]secretVolume, []string, error) {
	var out []secretVolume
	var warnings []string
	for _, v := range in.Pod.Spec.Volumes {
		if v.CSI == nil || v.CSI.Driver != CSIDriver {
			continue
		}
		className := strings.TrimSpace(v.CSI.VolumeAttributes[ClassAttribute])
		if className == "" {
			return nil, nil, &Error{Reason: ReasonInvalidVolume, Message: fmt.Sprintf("volume %q: csi.volumeAttributes.%s is empty: name the SecretProviderClass to mount", v.Name, ClassAttribute)}
		}
		class, tpls, w, err := parseClass(in, className, v.CSI.VolumeAttributes, fmt.Sprintf("volume %q", v.Name))
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, w...)
		if !class.BuiltIn() {
			warnings = append(warnings, fmt.Sprintf("volume %q: SecretProviderClass %s uses provider %q, which is not built in; the volume is left to the node CSI driver and its provider plugin", v.Name, className, class.Provider))
			continue
		}
		if v.CSI.ReadOnly == nil || !*v.CSI.ReadOnly {
			warnings = append(warnings, fmt.Sprintf("volume %q: csi.readOnly is not true; the upstream driver and the node shim refuse such a volume, so the pod would not start where it is not injected", v.Name))
		}
		sv := secretVolume{name: v.Name, class: class, templates: tpls}
		if ref := v.CSI.NodePublishSecretRef; ref != nil && ref.Name != "" {
			sv.nodePublishSecret = ref.Name
		}
		out = append(out, sv)
	}
	if sh := s.shorthand; sh != nil {
		for _, v := range in.Pod.Spec.Volumes {
			if v.Name == ShorthandVolumeName {
				return nil, nil, &Error{Reason: ReasonConflict, Message: fmt.Sprintf("annotation %s: the pod already has a volume named %q, which the shorthand would add", AnnotationSecretProviderClass, ShorthandVolumeName)}
			}
		}
		class, tpls, w, err := parseClass(in, sh.class, nil, "annotation "+AnnotationSecretProviderClass)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, w...)
		if !class.BuiltIn() {
			return nil, nil, &Error{Reason: ReasonClassInvalid, Message: fmt.Sprintf("annotation %s: SecretProviderClass %s uses provider %q, which is not built in; use a csi volume to have the node CSI driver forward to its plugin", AnnotationSecretProviderClass, sh.class, class.Provider)}
		}
		out = append(out, secretVolume{name: ShorthandVolumeName, class: class, shorthand: sh, templates: tpls})
	}
	total := 0
	for _, v := range out {
		for _, t := range v.templates {
			total += len(t.Text)
		}
	}
	if total > MaxTemplateBytesPerPod {
		return nil, nil, &Error{Reason: ReasonClassInvalid, Message: fmt.Sprintf("the templates (annotation %s) of the pod's SecretProviderClasses hold %d bytes of text, more than the limit of %d per pod (the agent receives them in its configuration); use fewer or shorter templates", render.Annotation, total, MaxTemplateBytesPerPod)}
	}
	return out, warnings, nil
}

// parseClass looks the class up in the pod's namespace and parses it with
// the volume's attributes laid over its parameters, as the upstream driver
// hands them to a provider (volume attributes win).
func parseClass(in *Input, name string, attrs map[string]string, where string) (*spc.Class, []render.Template, []string, error) {
	obj := in.Classes[name]
	if obj == nil || (obj.Namespace != "" && obj.Namespace != in.Namespace) {
		return nil, nil, nil, &Error{Reason: ReasonClassNotFound, Message: fmt.Sprintf("%s: SecretProviderClass %q not found in namespace %q", where, name, in.Namespace)}
	}
	params := obj.Spec.Parameters
	var warnings []string
	if extra := overlayKeys(attrs); len(extra) > 0 {
		merged := make(map[string]string, len(params)+len(extra))
		for k, v := range params {
			merged[k] = v
		}
		for _, k := range extra {
			if old, ok := params[k]; ok && old != attrs[k] {
				warnings = append(warnings, fmt.Sprintf("%s: volumeAttributes.%s overrides the parameter of SecretProviderClass %s", where, k, name))
			}
			merged[k] = attrs[k]
		}
		params = merged
	}
	class, err := spc.ParseAnnotated(in.Namespace, name, string(obj.Spec.Provider), params, obj.Annotations)
	if err != nil {
		return nil, nil, nil, &Error{Reason: ReasonClassInvalid, Message: fmt.Sprintf("%s: %v", where, err), Err: err}
	}
	// The templates are checked (syntax, functions, object names) and
	// their ConfigMap texts read here: the agent cannot read ConfigMaps.
	tpls, _, err := class.Templates(obj.Annotations[render.Annotation], in.ConfigMap)
	if err != nil {
		return nil, nil, nil, &Error{Reason: ReasonClassInvalid, Message: fmt.Sprintf("%s: SecretProviderClass %s/%s: %v", where, in.Namespace, name, err), Err: err}
	}
	class.SecretObjects = obj.Spec.SecretObjects
	warnings = append(warnings, class.Warnings...)
	// The sync controller refuses these entries; say so while the pod
	// author is looking.
	warnings = append(warnings, spc.SecretObjectWarnings(where, name, obj.Spec.SecretObjects)...)
	return class, tpls, warnings, nil
}

// overlayKeys are the volume attributes that reach the provider besides
// the class name, sorted.
func overlayKeys(attrs map[string]string) []string {
	var keys []string
	for k := range attrs {
		if k != ClassAttribute {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
