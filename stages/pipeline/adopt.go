package pipeline

import (
	"context"
	"time"

	"github.com/stagecoach/stagecoach/stages/adopt"
)

// Adopt takes every host's live tree over as release 0 (see package
// adopt), under the hosts' deploy locks, which the caller holds.
func (r *Run) Adopt(ctx context.Context) error {
	return adopt.Run(ctx, r.Context, adopt.ReleaseID(time.Now()))
}
