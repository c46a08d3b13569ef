package swap

import (
	"context"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// activateSlots runs the backup and the migrations of steps, when there
// are any, as an activation does, then makes the release live through
// the idle slot (slots.Activate), which switches current with the router.
func activateSlots(ctx context.Context, rc *run.Context, h *fleet.Host, steps []activationStep) error {
	if len(steps) > 0 {
		if _, _, err := runActivation(ctx, rc, h, steps, nil, h.RunBatch); err != nil {
			return err
		}
	}
	return slots.Activate(ctx, rc, h, rc.Plan.Release)
}
