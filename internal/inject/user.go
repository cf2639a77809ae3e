package inject

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// chooseUser applies the user rule: the agent-run-as-user annotation;
// otherwise, when every container reading the secrets runs as one explicit
// non-root user, that user (and its group, when they share one), so the
// agent can signal them and they can read files of any mode; otherwise the
// configured agent user.
func (p *plan) chooseUser(cfg *Config, spec *corev1.PodSpec, s *settings, consumers map[string]bool) []string {
	var warnings []string
	podUID, podGID := podUser(spec)
	var uids, gids []*int64
	var readers []string
	warnedReload := false
	for _, c := range allContainers(spec) {
		if !consumers[c.Name] {
			continue
		}
		readers = append(readers, c.Name)
		uid, gid := containerUser(c, podUID, podGID)
		uids, gids = append(uids, uid), append(gids, gid)
	}
	common := func(ids []*int64) *int64 {
		if len(ids) == 0 || ids[0] == nil {
			return nil
		}
		for _, id := range ids[1:] {
			if id == nil || *id != *ids[0] {
				return nil
			}
		}
		return ids[0]
	}
	uid, gid := common(uids), common(gids)
	switch {
	case s.runAsUser != nil:
		p.runAsUser = *s.runAsUser
	case uid != nil && *uid != 0:
		p.runAsUser = *uid
		if gid != nil {
			g := *gid
			p.runAsGroup = &g
		}
	default:
		p.runAsUser = cfg.AgentUID
		if p.reloadSignal != "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s: the containers reading the secrets (%s) do not all run as one explicit non-root runAsUser, so the agent runs as %d and can signal only processes of that user; set runAsUser on them or annotation %s", AnnotationReloadSignal, strings.Join(readers, ", "), p.runAsUser, AnnotationAgentRunAsUser))
			warnedReload = true
		}
	}
	// The agent has no CAP_KILL: the kernel lets it signal only processes
	// of its own user.
	if p.reloadSignal != "" && !warnedReload {
		var refused []string
		for _, c := range allContainers(spec) {
			if !slices.Contains(p.reloadTargets, c.Name) {
				continue
			}
			if uid, _ := containerUser(c, podUID, podGID); uid == nil || *uid != p.runAsUser {
				refused = append(refused, c.Name)
			}
		}
		if len(refused) > 0 {
			warnings = append(warnings, fmt.Sprintf("annotation %s: containers %s do not run as the agent's user %d (runAsUser), so the kernel refuses the agent's signal to them; run them as that user or set annotation %s", AnnotationReloadSignal, strings.Join(refused, ", "), p.runAsUser, AnnotationAgentRunAsUser))
		}
	}
	warnings = append(warnings, p.modeWarnings(spec, consumers)...)
	return warnings
}

// modeWarnings names the files that some container reading them cannot
// read, with the kernel's rule: the owner's bits for the agent's user, else
// the group's bits for members of the file's group, else the others' bits.
// The files belong to the agent's user; their group is the pod's fsGroup
// when it sets one (kubelet makes the volume root setgid and the writer
// keeps that bit, so every file inherits the group, and kubelet adds the
// fsGroup to every container's groups), else the agent's group when it is
// known.
func (p *plan) modeWarnings(spec *corev1.PodSpec, consumers map[string]bool) []string {
	podUID, podGID := podUser(spec)
	var supplemental []int64
	var fsGroup *int64
	if sc := spec.SecurityContext; sc != nil {
		supplemental, fsGroup = sc.SupplementalGroups, sc.FSGroup
	}
	fileGroup := p.runAsGroup
	if fileGroup == nil {
		fileGroup = podGID
	}
	if fsGroup != nil {
		fileGroup = fsGroup
	}
	type reader struct {
		name   string
		uid    *int64
		groups map[int64]bool
	}
	var readers []reader
	for _, c := range allContainers(spec) {
		if !consumers[c.Name] {
			continue
		}
		r := reader{name: c.Name, uid: podUID, groups: map[int64]bool{}}
		gid := podGID
		if sc := c.SecurityContext; sc != nil {
			if sc.RunAsUser != nil {
				r.uid = sc.RunAsUser
			}
			if sc.RunAsGroup != nil {
				gid = sc.RunAsGroup
			}
		}
		if gid != nil {
			r.groups[*gid] = true
		}
		for _, g := range supplemental {
			r.groups[g] = true
		}
		if fsGroup != nil {
			r.groups[*fsGroup] = true
		}
		readers = append(readers, r)
	}
	// A reader whose user the image decides (uid nil) is taken to be
	// another user than the agent's.
	canRead := func(r reader, mode fs.FileMode) bool {
		switch {
		case r.uid != nil && *r.uid == p.runAsUser:
			return mode&0o400 != 0
		case fileGroup != nil && r.groups[*fileGroup]:
			return mode&0o040 != 0
		}
		return mode&0o004 != 0
	}
	group := "the agent's group"
	if fileGroup != nil {
		group = fmt.Sprintf("group %d", *fileGroup)
	}
	var warnings []string
	for _, v := range p.volumes {
		for _, f := range v.class.Files() {
			if f.Mode == 0 {
				continue
			}
			var denied []string
			for _, r := range readers {
				if !canRead(r, f.Mode) {
					denied = append(denied, r.name)
				}
			}
			if len(denied) == 0 {
				continue
			}
			hint := fmt.Sprintf("run them as user %d", p.runAsUser)
			if f.Mode&0o040 != 0 && fsGroup == nil {
				hint += ", or set the pod's fsGroup so that the group-readable mode applies to them"
			}
			warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: file %q has mode %04o and is written by user %d and %s, so containers %s cannot read it; %s", v.class.Name, f.Path, f.Mode, p.runAsUser, group, strings.Join(denied, ", "), hint))
		}
	}
	return warnings
}

// containerUser is the container's effective runAsUser and runAsGroup:
// its own, or the pod's.
func containerUser(c *corev1.Container, podUID, podGID *int64) (uid, gid *int64) {
	uid, gid = podUID, podGID
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

func podUser(spec *corev1.PodSpec) (uid, gid *int64) {
	if sc := spec.SecurityContext; sc != nil {
		return sc.RunAsUser, sc.RunAsGroup
	}
	return nil, nil
}
