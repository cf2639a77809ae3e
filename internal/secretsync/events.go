package secretsync

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

func (r *Reconciler) warn(class *ssiv1.SecretProviderClass, reason, action, format string, args ...any) {
	if reason != ReasonSecretConflict && reason != ReasonFetchFailed && reason != ReasonTokenRequestFailed {
		r.metrics.Errors.WithLabelValues(reason).Inc()
	}
	r.event(class, nil, corev1.EventTypeWarning, reason, action, format, args...)
}

// event records an event on the class (or, when the class is gone, on
// the Secret concerned). An identical Warning is recorded at most once per
// Options.WarningRepeat; a different message always is.
func (r *Reconciler) event(class *ssiv1.SecretProviderClass, related runtime.Object, typ, reason, action, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	var regarding runtime.Object = class
	if class == nil {
		if related == nil {
			return
		}
		regarding = related
	}
	if typ == corev1.EventTypeWarning {
		m, _ := meta.Accessor(regarding)
		key := m.GetNamespace() + "/" + m.GetName() + "|" + reason + "|" + msg
		now := r.clock.Now()
		r.mu.Lock()
		last, seen := r.recent[key]
		if !seen || now.Sub(last) >= r.opts.WarningRepeat {
			r.recent[key] = now
		}
		if len(r.recent) > 4096 {
			for k, t := range r.recent {
				if now.Sub(t) >= r.opts.WarningRepeat {
					delete(r.recent, k)
				}
			}
		}
		r.mu.Unlock()
		if seen && now.Sub(last) < r.opts.WarningRepeat {
			r.log.V(1).Info(msg, "reason", reason, "type", typ, "action", action, "repeated", true)
			return
		}
	}
	r.log.Info(msg, "reason", reason, "type", typ, "action", action)
	if len(msg) > 1000 {
		msg = msg[:997] + "..."
	}
	r.recorder.Event(regarding, typ, reason, msg)
}
