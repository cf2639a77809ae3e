package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/schedule"
	"github.com/ssinjector/ssi/internal/volume"
)

// vol is one secrets volume and its state as the loop sees it.
type vol struct {
	name     string
	provider provider.Provider
	v        *volume.Volume
	// cloud is the volume's identity (agentconfig.Config.CloudOf).
	cloud identity.Cloud
	// wake asks the volume's loop to fetch now (provider.Waker).
	wake chan struct{}

	written     atomic.Bool  // a complete set has been published
	lastSuccess atomic.Int64 // unix nanoseconds of the last successful fetch
	failures    atomic.Int64 // consecutive failed fetches
}

func (v *vol) class() string { return v.v.Class.Key() }

// runner drives the volumes: first fetch, then rotation.
type runner struct {
	log *slog.Logger
	// clock times fetches, retries and rotations.
	clock     clock.WithTicker
	id        identity.Identity
	vols      []*vol
	interval  time.Duration
	retryBase time.Duration
	retryMax  time.Duration
	metrics   *metrics
	reload    *reloader
	started   time.Time
}

// ready reports whether every volume has had a complete write.
func (r *runner) ready() bool {
	for _, v := range r.vols {
		if !v.written.Load() {
			return false
		}
	}
	return true
}

// refresh is one fetch-and-publish of a volume, with its metrics and logs.
func (r *runner) refresh(ctx context.Context, v *vol, phase string) (volume.Result, error) {
	start := r.clock.Now()
	id := r.id
	id.Cloud = v.cloud
	res, err := v.v.Refresh(ctx, v.provider, id)
	took := r.clock.Since(start)
	pname := v.provider.Name()
	if err != nil && !res.Write.Swapped {
		if ctx.Err() != nil {
			// Cancelled by shutdown or the first-fetch deadline: not a
			// backend failure.
			return res, err
		}
		n := v.failures.Add(1)
		reason := provider.ReasonOf(err)
		r.metrics.fetches.WithLabelValues(pname, "error").Inc()
		r.metrics.errors.WithLabelValues(pname, string(reason)).Inc()
		if phase == phaseRotation {
			r.metrics.rotations.WithLabelValues(pname, "error").Inc()
		}
		r.log.Warn("fetch failed; the files already written stay as they are",
			"volume", v.name, "class", v.class(), "provider", pname, "phase", phase,
			"reason", string(reason), "consecutiveFailures", n, "error", err.Error())
		return res, err
	}
	v.failures.Store(0)
	v.lastSuccess.Store(r.clock.Now().UnixNano())
	v.written.Store(true)
	r.metrics.fetches.WithLabelValues(pname, "success").Inc()
	changed := res.Write.Swapped
	if phase == phaseRotation {
		result := "unchanged"
		if changed {
			result = "changed"
		}
		r.metrics.rotations.WithLabelValues(pname, result).Inc()
	}
	attrs := []any{"volume", v.name, "class", v.class(), "provider", pname, "phase", phase,
		"objects", len(res.Objects), "duration", took.Round(time.Microsecond).String()}
	switch {
	case changed:
		attrs = append(attrs, "changed", res.Write.Changed, "removed", res.Write.Removed)
		if res.Rendered != nil {
			// The templates executed: those whose objects changed.
			attrs = append(attrs, "rendered", res.Rendered)
		}
		r.log.Info("files published", attrs...)
	default:
		r.log.Debug("nothing changed", attrs...)
	}
	if err != nil {
		// The new set is published but a name could not be fixed up.
		r.log.Warn("files published with an error", "volume", v.name, "class", v.class(), "error", err.Error())
	}
	return res, nil
}

const (
	phaseFirst    = "first"
	phaseRotation = "rotation"
)

// first fetches every volume once, retrying each with backoff until
// timeout. It returns an error naming each volume's class, object and
// cause when any volume could not be written.
func (r *runner) first(ctx context.Context, timeout time.Duration) error {
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errs := make([]error, len(r.vols))
	var wg sync.WaitGroup
	for i, v := range r.vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.firstVolume(fctx, v, timeout)
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		r.log.Info("all volumes written; ready", "volumes", len(r.vols))
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped before the first fetch completed: %w", err)
	}
	return fmt.Errorf("first fetch did not complete within %s: %w", timeout, err)
}

func (r *runner) firstVolume(ctx context.Context, v *vol, timeout time.Duration) error {
	var last error
	for attempt := 1; ; attempt++ {
		_, err := r.refresh(ctx, v, phaseFirst)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if last == nil {
				return r.volumeError(v, fmt.Errorf("no answer from provider %s within %s: %w", v.provider.Name(), timeout, context.Cause(ctx)))
			}
			return r.volumeError(v, last)
		}
		last = err
		if provider.ReasonOf(err) == provider.ReasonInvalidConfig {
			// The class snapshot cannot change inside the pod.
			return r.volumeError(v, err)
		}
		d := r.backoff(attempt)
		r.log.Info("retrying first fetch", "volume", v.name, "class", v.class(), "attempt", attempt, "in", d.Round(time.Millisecond).String())
		t := r.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return r.volumeError(v, last)
		case <-t.C():
		}
	}
}

// volumeError names the volume, and the class unless err is a
// *provider.Error (which names it).
func (r *runner) volumeError(v *vol, err error) error {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	return fmt.Errorf("volume %s: SecretProviderClass %s (provider %s): %w", v.name, v.class(), v.provider.Name(), err)
}

// settle runs once the agent goes from start-up to rotating.
func (r *runner) settle() {
	restoreCollector()
	before, after, err := releaseStartupMemory()
	if err != nil {
		r.log.Warn("could not release start-up memory", "error", err.Error())
		return
	}
	r.log.Debug("released start-up memory", "residentKiBBefore", before, "residentKiBAfter", after)
}

// adoptWritten marks volumes whose files an init container already wrote
// as ready, and asks for an immediate fetch of the others.
func (r *runner) adoptWritten() {
	for _, v := range r.vols {
		st, err := os.Lstat(filepath.Join(v.v.Dir, atomicdir.DataDir))
		if err == nil {
			v.written.Store(true)
			v.lastSuccess.Store(st.ModTime().UnixNano())
			continue
		}
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
}

// rotate refetches every volume every interval (with jitter), early when
// its provider wakes it, and after failures with backoff, until ctx ends.
func (r *runner) rotate(ctx context.Context) {
	r.settle()
	var wg sync.WaitGroup
	r.fanOutWakes(ctx, &wg)
	for _, v := range r.vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.rotateVolume(ctx, v)
		}()
	}
	wg.Wait()
	r.log.Info("stopped")
}

func (r *runner) rotateVolume(ctx context.Context, v *vol) {
	delay := r.untilRenewal(v, r.jitter(r.interval))
	for {
		var tick <-chan time.Time
		var t clock.Timer
		if delay > 0 {
			t = r.clock.NewTimer(delay)
			tick = t.C()
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-tick:
		case <-v.wake:
			if t != nil {
				t.Stop()
			}
			r.log.Debug("fetch requested early by the provider", "volume", v.name, "class", v.class())
		}
		res, err := r.refresh(ctx, v, phaseRotation)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			delay = r.backoff(int(v.failures.Load()))
			continue
		}
		delay = r.untilRenewal(v, r.jitter(r.interval))
		if res.Write.Swapped && r.reload != nil {
			r.reload.signal(r.metrics)
		}
	}
}

// fanOutWakes forwards each Waker provider's signals to all its volumes.
func (r *runner) fanOutWakes(ctx context.Context, wg *sync.WaitGroup) {
	byName := map[string][]*vol{}
	var order []string
	for _, v := range r.vols {
		n := v.provider.Name()
		if _, ok := byName[n]; !ok {
			order = append(order, n)
		}
		byName[n] = append(byName[n], v)
	}
	for _, n := range order {
		vs := byName[n]
		w, ok := vs[0].provider.(provider.Waker)
		if !ok {
			continue
		}
		ch := w.Wake()
		if ch == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					for _, v := range vs {
						select {
						case v.wake <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
}

// backoff is the delay before retry number n (n >= 1): schedule.Backoff
// from retryBase, capped at the larger of the rotation interval and
// retryMax.
func (r *runner) backoff(n int) time.Duration {
	return schedule.Backoff(r.retryBase, max(r.retryMax, r.interval), n)
}

// jitter is the wait before a scheduled rotation (schedule.Rotation): a
// change in the backend reaches the files within one interval.
func (r *runner) jitter(interval time.Duration) time.Duration {
	return schedule.Rotation(interval)
}

// closeProviders releases the providers' connections and background work.
func closeProviders(log *slog.Logger, set provider.Set) {
	if err := set.Close(); err != nil {
		log.Warn("closing providers", "error", err.Error())
	}
}

// restoreCollector turns the garbage collector back on when the webhook
// started the agent with GOGC=off to speed up start-up (see inject's
// RuntimeEnv); from here on the agent runs with Go's default.
func restoreCollector() {
	if strings.EqualFold(os.Getenv("GOGC"), "off") {
		debug.SetGCPercent(100)
	}
}
