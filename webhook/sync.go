package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	ssisync "github.com/ssinjector/ssi/internal/sync"
	"github.com/ssinjector/ssi/internal/webhook"
)

// syncFlags are the flags of the secret sync controller (Helm value
// syncSecret.enabled and rotationPollInterval).
type syncFlags struct {
	enabled     bool
	rotation    time.Duration
	leaderElect bool
	shared      builtin.Shared
	// limits are the size caps and class files directory of the sync
	// controller's providers, a shared process.
	limits limits.Config
}

func (s *syncFlags) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.enabled, "sync-secrets", false, "sync SecretProviderClass secretObjects into Kubernetes Secrets (syncSecret.enabled)")
	fs.DurationVar(&s.rotation, "rotation-poll-interval", ssisync.DefaultRotationInterval, "time between fetches of a synced class (rotationPollInterval)")
	fs.BoolVar(&s.leaderElect, "leader-elect", true, "with --sync-secrets: elect one replica to sync (Lease "+ssisync.LeaderElectionID+" in --namespace)")
	s.limits.AddFlags(fs)
	s.shared.AddFlags(fs)
}

// apply adds the sync controller to the webhook's manager when enabled.
func (s *syncFlags) apply(o *webhook.Options) error {
	if !s.enabled {
		return nil
	}
	if s.rotation <= 0 {
		return errors.New("--rotation-poll-interval must be positive")
	}
	if _, err := s.limits.Complete(); err != nil {
		return fmt.Errorf("--max-object-bytes, --max-volume-bytes: %w", err)
	}
	if s.leaderElect && o.Namespace == "" {
		return errors.New("--sync-secrets with --leader-elect needs --namespace (or $POD_NAMESPACE) for the Lease")
	}
	prev := o.ManagerOptions
	ns := o.Namespace
	o.ManagerOptions = func(mo *manager.Options) {
		if prev != nil {
			prev(mo)
		}
		mo.LeaderElection = s.leaderElect
		mo.LeaderElectionID = ssisync.LeaderElectionID
		mo.LeaderElectionNamespace = ns
		mo.LeaderElectionReleaseOnCancel = true
	}
	o.Setup = append(o.Setup, func(mgr manager.Manager) error {
		// Per-pod Vault sessions end when their pods stop being synced.
		set := builtin.New(slog.New(logr.ToSlogHandler(mgr.GetLogger().WithName("sync-providers"))), builtin.OutsidePod, 3*s.rotation, s.limits, s.shared)
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			_ = set.Close()
			return nil
		})); err != nil {
			return err
		}
		if _, err := ssisync.Setup(mgr, ssisync.Options{Providers: set, RotationInterval: s.rotation, Sizes: s.limits.Sizes}); err != nil {
			return fmt.Errorf("sync controller: %w", err)
		}
		return nil
	})
	return nil
}
