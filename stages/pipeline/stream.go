package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/ship"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// errNotWritten is the package's result when the ship failed before the
// archive was written.
var errNotWritten = errors.New("archive not written: the ship failed first")

// packageAndShip is Deploy's Package and Ship at once: the archive goes to
// the local package and, as it is written, to every host, so compressing
// and uploading overlap instead of following each other. The standalone
// Package and Ship keep them apart. Each stage keeps its hooks, before the
// stream starts and after it ends, and its own line in the report: the
// two durations overlap. The files may have been scanned ahead (see
// ahead): the package then began with that scan. It returns the stage
// that failed, if any.
func (r *Run) packageAndShip(ctx context.Context, ahead *scanAhead) (failed string, err error) {
	pkgStart := time.Now()
	if err := r.hook(ctx, "before-package"); err != nil {
		r.Report.Stage("package", time.Since(pkgStart), err)
		return "package", err
	}
	var p *run.Packaged
	if ahead != nil {
		pkgStart = ahead.start
		p, err = pack.PlanScanned(r.Cfg, r.Plan, r.Previous, ahead.files, r.Log)
	} else {
		p, err = pack.Plan(ctx, r.Cfg, r.Plan, r.Previous, r.Log)
	}
	if err != nil {
		r.Report.Stage("package", time.Since(pkgStart), err)
		return "package", err
	}

	shipStart := time.Now()
	// At most Parallel hosts take the stream; the others get the written
	// archive afterwards, as Ship sends it.
	streamed, rest := r.Hosts, []*fleet.Host(nil)
	if n := r.Env.Parallel; len(streamed) > n {
		streamed, rest = r.Hosts[:n], r.Hosts[n:]
	}
	err = r.hook(ctx, "before-ship")
	if err == nil {
		err = ship.Prepare(ctx, r.Context, streamed, p)
	}
	if err == nil {
		// Every host, streamed or not, must unpack what is written.
		pack.Compress(p, ship.Compression(r.Hosts, p.Bytes))
	}
	if err != nil {
		r.Report.Stage("package", time.Since(pkgStart), errNotWritten)
		r.Report.Stage("ship", time.Since(shipStart), err)
		return "ship", err
	}

	// Each host stages the release in its last ship round trip.
	stage := func(h *fleet.Host, p *run.Packaged) ([]remote.Command, func([]remote.Result, []error) error, error) {
		return swap.StageBatch(r.Context, h, p.Manifest)
	}
	var written time.Time // the package ends with the archive written, not shipped
	werr, shipErr := ship.Stream(ctx, r.Context, streamed, p, func(w io.Writer) error {
		err := pack.Write(ctx, p, r.Log, w)
		written = time.Now()
		return err
	}, stage)
	if werr == nil {
		r.Packaged = p
	}
	pkgTook := written.Sub(pkgStart)
	if werr == nil && ctx.Err() == nil {
		hookStart := time.Now()
		werr = r.hook(ctx, "after-package")
		pkgTook += time.Since(hookStart)
	}
	if err := ctx.Err(); err != nil {
		// Interrupted once the stream began: the hosts were receiving the
		// archive, so it is the ship that was stopped, whether or not the
		// archive was written whole.
		switch {
		case shipErr == nil:
			shipErr = err
		case !errors.Is(shipErr, context.Canceled):
			shipErr = fmt.Errorf("%w: %w", err, shipErr)
		}
		r.Report.StageFrom("package", pkgStart, pkgTook, werr)
		r.Report.Stage("ship", time.Since(shipStart), shipErr)
		return "ship", shipErr
	}
	r.Report.StageFrom("package", pkgStart, pkgTook, werr)
	if werr != nil {
		r.Report.Stage("ship", time.Since(shipStart), shipErr)
		return "package", werr
	}
	if shipErr == nil && len(rest) > 0 {
		shipErr = r.Fleet.Each(ctx, rest, "ship "+p.Manifest.Release+" to", func(ctx context.Context, h *fleet.Host) error {
			return ship.To(ctx, h, p, stage)
		})
	}
	if shipErr == nil {
		shipErr = r.hook(ctx, "after-ship")
	}
	if shipErr == nil {
		shipErr = ctx.Err()
	}
	r.Report.Stage("ship", time.Since(shipStart), shipErr)
	if shipErr != nil {
		return "ship", shipErr
	}
	return "", nil
}
