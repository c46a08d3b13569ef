package targets

import (
	"context"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
)

// Adopt takes over a server that serves the app from plain directories (the environment's adopt: block) as release 0.
func Adopt(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return holding(ctx, "adopt", func(ctx context.Context, r *pipeline.Run) error {
		return r.Adopt(ctx)
	})
}
