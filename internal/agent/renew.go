package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// bindRenewal gives each volume the runner's clock for its certificate
// renewal decisions and the pod's renewal point (the cert-renew-at
// annotation), which overrides the class's (volume.Volume.RenewAt).
func (r *runner) bindRenewal(podRenewAt float64) {
	for _, v := range r.vols {
		v.v.Now = r.clock.Now
		if podRenewAt > 0 {
			v.v.RenewAt = podRenewAt
		}
	}
}

// untilRenewal shortens the wait before the next rotation to the next
// certificate renewal point of the volume, when that comes first: a
// certificate is renewed on time even with a long rotation interval.
func (r *runner) untilRenewal(v *vol, delay time.Duration) time.Duration {
	now := r.clock.Now()
	next := v.v.NextRenewal(now)
	if next.IsZero() {
		return delay
	}
	if d := next.Sub(now); d < delay || delay <= 0 {
		return d
	}
	return delay
}

var (
	descNextRenewal = prometheus.NewDesc(metricsNamespace+"_object_next_renewal_timestamp_seconds",
		"Unix time at which the object's certificate (and the objects cut from the same response) is fetched again; only objects holding or sharing a certificate.",
		[]string{"class", "object"}, nil)
	descExpiry = prometheus.NewDesc(metricsNamespace+"_object_expiry_timestamp_seconds",
		"Unix time at which the object's certificate (leaf NotAfter) or lease ends; only objects with one.",
		[]string{"class", "object"}, nil)
)

// renewalCollector reports each volume's per-object renewal schedule at
// scrape time.
type renewalCollector struct{ r *runner }

// Describe implements prometheus.Collector.
func (c *renewalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNextRenewal
	ch <- descExpiry
}

// Collect implements prometheus.Collector.
func (c *renewalCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{}
	for _, v := range c.r.vols {
		for _, rn := range v.v.Renewals() {
			k := [2]string{v.class(), rn.ID}
			if seen[k] {
				// Two volumes of one class: one series.
				continue
			}
			seen[k] = true
			if !rn.Next.IsZero() {
				ch <- prometheus.MustNewConstMetric(descNextRenewal, prometheus.GaugeValue, float64(rn.Next.UnixNano())/1e9, k[0], k[1])
			}
			if !rn.Expires.IsZero() {
				ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(rn.Expires.UnixNano())/1e9, k[0], k[1])
			}
		}
	}
}
