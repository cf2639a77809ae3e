package inject

import (
	"fmt"

	"github.com/ssinjector/ssi/internal/spc"
)

// AnnotationCertRenewAt is the pod's certificate renewal point: the
// fraction of a certificate's validity after which the agent fetches it
// again ("0.5" or "50%"). It overrides the classes' parameters.ssiCertRenewAt
// for every volume of the pod.
const AnnotationCertRenewAt = Prefix + "cert-renew-at"

// parseCertRenewAt reads cert-renew-at with the parser the class parameter
// uses (spc.ParseRenewAt), so both accept the same values; zero means the
// annotation is absent or ignored.
func parseCertRenewAt(ann map[string]string, mode Mode, warnings []string) (float64, []string, error) {
	v, ok := ann[AnnotationCertRenewAt]
	if !ok {
		return 0, warnings, nil
	}
	f, valid := spc.ParseRenewAt(v)
	if !valid {
		return 0, nil, annotationError(AnnotationCertRenewAt, "%q is not a fraction between 0 and 1 (such as 0.5) or a percentage (such as 50%%)", v)
	}
	if mode == ModeInitOnly {
		return 0, append(warnings, fmt.Sprintf("annotation %s is ignored: mode is init-only, which never renews", AnnotationCertRenewAt)), nil
	}
	return f, warnings, nil
}
