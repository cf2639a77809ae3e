package schedule

import (
	"testing"
	"time"
)

func TestRotation(t *testing.T) {
	for name, tc := range map[string]struct {
		d        time.Duration
		min, max time.Duration
	}{
		"two minutes": {d: 2 * time.Minute, min: 108 * time.Second, max: 2 * time.Minute},
		"one second":  {d: time.Second, min: 900 * time.Millisecond, max: time.Second},
		"nine ns":     {d: 9, min: 9, max: 9},
		"zero":        {d: 0, min: 0, max: 0},
		"negative":    {d: -time.Second, min: 0, max: 0},
	} {
		t.Run(name, func(t *testing.T) {
			spread := map[time.Duration]bool{}
			for range 200 {
				got := Rotation(tc.d)
				if got < tc.min || got > tc.max {
					t.Fatalf("Rotation(%s) = %s, want within [%s, %s]", tc.d, got, tc.min, tc.max)
				}
				spread[got] = true
			}
			if tc.max-tc.min > time.Millisecond && len(spread) < 2 {
				t.Errorf("Rotation(%s) returned one value 200 times; want a spread", tc.d)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for name, tc := range map[string]struct {
		base, limit time.Duration
		n           int
		// full is the un-jittered wait; the result lies in [full/2, full].
		full time.Duration
	}{
		"first retry":            {base: 500 * time.Millisecond, limit: 5 * time.Minute, n: 1, full: 500 * time.Millisecond},
		"fourth retry":           {base: 500 * time.Millisecond, limit: 5 * time.Minute, n: 4, full: 4 * time.Second},
		"capped":                 {base: 2 * time.Second, limit: 2 * time.Minute, n: 10, full: 2 * time.Minute},
		"many retries":           {base: 2 * time.Second, limit: 30 * time.Second, n: 1 << 20, full: 30 * time.Second},
		"n below one":            {base: time.Second, limit: time.Minute, n: 0, full: time.Second},
		"base above limit":       {base: time.Minute, limit: time.Second, n: 1, full: time.Second},
		"no base":                {base: 0, limit: 8 * time.Second, n: 3, full: 8 * time.Second},
		"no limit":               {base: 3 * time.Second, limit: 0, n: 3, full: 3 * time.Second},
		"neither base nor limit": {n: 3, full: 0},
	} {
		t.Run(name, func(t *testing.T) {
			spread := map[time.Duration]bool{}
			for range 200 {
				got := Backoff(tc.base, tc.limit, tc.n)
				if got < tc.full/2 || got > tc.full {
					t.Fatalf("Backoff(%s, %s, %d) = %s, want within [%s, %s]", tc.base, tc.limit, tc.n, got, tc.full/2, tc.full)
				}
				spread[got] = true
			}
			if tc.full > time.Millisecond && len(spread) < 2 {
				t.Errorf("Backoff returned one value 200 times; want a spread")
			}
		})
	}
}
