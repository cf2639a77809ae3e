package volume

import (
	"time"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// DefaultRenewAt is the point of a certificate's validity (NotBefore to
// NotAfter of the leaf) at which it is fetched again, as a fraction.
const DefaultRenewAt = 2.0 / 3

// Renewal is the schedule of one object that holds (or shares a response
// with) a certificate, or that has a lease.
type Renewal struct {
	// ID is the object's ID and Group its group (provider.Object.Group,
	// or the ID).
	ID, Group string
	// Next is the renewal point of its group's certificate; zero without
	// a certificate.
	Next time.Time
	// Expires is when the group's certificate (or the object's lease)
	// ends.
	Expires time.Time
}

// renewAt is the volume's renewal point: the pod's, else the class's;
// renewals falls back on DefaultRenewAt.
func (v *Volume) renewAt() float64 {
	if v.RenewAt > 0 && v.RenewAt < 1 {
		return v.RenewAt
	}
	return v.Class.CertRenewAt
}

// groupOf is an object's group, the object itself when it has none.
func groupOf(o provider.Object) string {
	if o.Group != "" {
		return o.Group
	}
	return "\x00" + o.ID
}

// renewals computes, for complete objects, each object's renewal: the
// earliest leaf certificate of its group decides the group's renewal point
// (NotBefore + at·validity) and expiry, so that certificate, key and chain
// cut from one response are renewed together.
func renewals(objs []provider.Object, at float64) []Renewal {
	if at <= 0 || at >= 1 {
		at = DefaultRenewAt
	}
	type gv struct {
		v  Validity
		ok bool
	}
	groups := map[string]*gv{}
	for _, o := range objs {
		g := groupOf(o)
		if groups[g] == nil {
			groups[g] = &gv{}
		}
		for _, f := range o.Files {
			v, ok := CertValidity(f.Data)
			if !ok {
				continue
			}
			cur := groups[g]
			if !cur.ok || v.NotAfter.Before(cur.v.NotAfter) {
				cur.v, cur.ok = v, true
			}
		}
	}
	var out []Renewal
	for _, o := range objs {
		g := groups[groupOf(o)]
		r := Renewal{ID: o.ID, Group: groupOf(o), Expires: o.Expires}
		if g.ok {
			life := g.v.NotAfter.Sub(g.v.NotBefore)
			r.Next = g.v.NotBefore.Add(time.Duration(float64(life) * at))
			r.Expires = g.v.NotAfter
		}
		if r.Next.IsZero() && r.Expires.IsZero() {
			continue
		}
		out = append(out, r)
	}
	return out
}

// keep returns the IDs of the objects whose group's renewal point is after
// now: their previous answer stands. A group holding an optional object
// (spc.Class.Optional) is read at every rotation, so that an object
// deleted in the backend leaves the volume at the next one.
func keep(rs []Renewal, now time.Time, class *spc.Class) map[string]bool {
	optional := map[string]bool{}
	if class != nil {
		for id, ids := range class.Optional {
			optional[id] = true
			for _, sub := range ids {
				optional[sub] = true
			}
		}
	}
	readAlways := map[string]bool{}
	for _, r := range rs {
		if optional[r.ID] {
			readAlways[r.Group] = true
		}
	}
	var out map[string]bool
	for _, r := range rs {
		if !r.Next.IsZero() && now.Before(r.Next) && !readAlways[r.Group] {
			if out == nil {
				out = map[string]bool{}
			}
			out[r.ID] = true
		}
	}
	return out
}

// Renewals returns the renewal schedule of the objects last published (the
// objects with a certificate or a lease), for metrics.
func (v *Volume) Renewals() []Renewal {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Renewal(nil), v.renewals...)
}

// NextRenewal is the earliest renewal point after now of the objects last
// published; zero when none is ahead. The agent fetches then even when its
// rotation interval is longer.
func (v *Volume) NextRenewal(now time.Time) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	var next time.Time
	for _, r := range v.renewals {
		if r.Next.After(now) && (next.IsZero() || r.Next.Before(next)) {
			next = r.Next
		}
	}
	return next
}
