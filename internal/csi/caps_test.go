package csi

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
)

// TestTmpfsSize: every tmpfs the shim mounts has a size=, derived from the
// per-volume cap, so no volume can take the node's memory.
func TestTmpfsSize(t *testing.T) {
	cases := map[string]struct {
		size int64
		want string
	}{
		"default": {0, "mode=0755,size=" + strconv.FormatInt(2*limits.DefaultVolumeBytes+1<<20, 10)},
		"set":     {(limits.Sizes{VolumeBytes: 8 << 20}).TmpfsBytes(), "mode=0755,size=17825792"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tmpfsData(tc.size); got != tc.want {
				t.Errorf("tmpfsData(%d) = %q, want %q", tc.size, got, tc.want)
			}
		})
	}
}

// TestPublishSizeCap: an object over the shim's per-object cap fails the
// publish with an event naming the object and the limit, quoting nothing,
// and the tmpfs is unmounted again.
func TestPublishSizeCap(t *testing.T) {
	class := spcObject("team-a", "db", "test", map[string]string{"objects": "x"})
	h := newHarness(t, func(o *Options) { o.Limits.Sizes = limits.Sizes{ObjectBytes: 16, VolumeBytes: 64} }, class)
	h.prov.set(map[string]string{"small": "ok", "huge": strings.Repeat("S", 17)}, nil)
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
	if status.Code(err) == codes.OK {
		t.Fatal("published an object over the cap")
	}
	ev := h.event()
	for _, want := range []string{"team-a/db", `object "huge"`, "InvalidContent", "17 bytes, more than the limit of 16 bytes"} {
		if !strings.Contains(ev, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("event %q / error %q: want %q", ev, err, want)
		}
	}
	if strings.Contains(ev, "SSS") || strings.Contains(err.Error(), "SSS") {
		t.Errorf("content quoted: %q", ev)
	}
	if ok, _ := h.mnt.IsMountPoint(target); ok {
		t.Error("the target stays mounted after the failed publish")
	}
}

// blockingProvider blocks every Fetch until release is closed.
type blockingProvider struct {
	started chan struct{}
	release chan struct{}
}

func (blockingProvider) Name() string { return "slow" }
func (b blockingProvider) Fetch(ctx context.Context, _ provider.Request) ([]provider.Object, error) {
	close(b.started)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, provider.WithReason(provider.ReasonUnavailable, context.Canceled)
}

// TestPublishNotSerialised: a publish stuck in one tenant's slow class does
// not hold up another tenant's publish.
func TestPublishNotSerialised(t *testing.T) {
	slow := blockingProvider{started: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, func(o *Options) { o.Providers["slow"] = slow },
		spcObject("attacker", "slow", "slow", nil), spcObject("team-a", "db", "test", nil))
	defer close(slow.release)
	done := make(chan error, 1)
	go func() {
		_, err := h.d.NodePublishVolume(context.Background(), publishReq(kubeletTarget(t, h.root, "uid-x", "secrets"),
			podVolume{ns: "attacker", pod: "x", uid: "uid-x", sa: "default", class: "slow"}))
		done <- err
	}()
	<-slow.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.d.NodePublishVolume(ctx, publishReq(kubeletTarget(t, h.root, "uid-1", "secrets"), web)); err != nil {
		t.Fatalf("the other tenant's publish: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the slow publish returned early: %v", err)
	default:
	}
}
