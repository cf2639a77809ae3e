package spc

import (
	"strconv"
	"strings"
)

// ParamCertRenewAt is the class parameter our parser owns (the upstream
// providers read only their own keys and ignore it): the fraction of a
// certificate's validity after which the agent fetches it again, e.g.
// "0.5" or "50%". Absent means the default (two thirds).
const ParamCertRenewAt = "ssiCertRenewAt"

// ParseRenewAt reads a renewal point: a fraction in (0, 1) such as "0.5",
// or a percentage in (0%, 100%) such as "50%". It is shared by the class
// parameter and the pod annotation.
func ParseRenewAt(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSpace(strings.TrimSuffix(s, "%")), 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	f /= scale
	if !(f > 0 && f < 1) {
		return 0, false
	}
	return f, true
}

// parseCertRenewAt sets c.CertRenewAt from the class parameter.
func parseCertRenewAt(p *parser, c *Class) error {
	if !p.has(ParamCertRenewAt) {
		return nil
	}
	f, ok := ParseRenewAt(p.get(ParamCertRenewAt))
	if !ok {
		return p.errf("parameters."+ParamCertRenewAt, "%q is not a fraction between 0 and 1 (such as 0.5) or a percentage (such as 50%%)", p.get(ParamCertRenewAt))
	}
	c.CertRenewAt = f
	return nil
}
