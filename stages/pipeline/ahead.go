package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/build"
	"github.com/stagecoach/stagecoach/stages/checkout"
	"github.com/stagecoach/stagecoach/stages/detect"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// ahead is a deploy's detect and build run while it connects to the hosts
// and takes their locks, against the revision this checkout last deployed
// to the environment. When the hosts confirm that revision, the deploy
// takes the plan and the build instead of starting them once it holds the
// locks: on a distant host, or one whose login shell is slow to start,
// that takes them off the critical path. When they do not, the detect
// runs again against the revision they run (none on a first deploy), and
// the build is kept if the new plan builds the same components; else both
// are dropped, lines included, and run again as usual. Neither writes to
// the run: the deploy adopts what they made.
type ahead struct {
	// The detect's lines and the build's are held apart: a rebased plan
	// drops the first and keeps the second.
	detectLog, buildLog *ui.Held
	cancel              context.CancelFunc
	planned             chan struct{} // closed once the detect ended
	done                chan struct{} // closed once the build ended, or the detect failed
	stopped             sync.Once

	// Set before planned is closed.
	plan        *run.Plan // nil when the detect failed
	detectStart time.Time
	detectTook  time.Duration
	// Set before done is closed.
	buildStart time.Time
	buildTook  time.Duration
	built      run.BuildResult
	buildErr   error
	scan       *scanAhead // nil unless the scan ran and succeeded
}

// scanAhead is the package's scan of the build's files, run ahead.
type scanAhead struct {
	start time.Time
	files pack.Scanned
}

// aheadHooks are the hook points whose plugins run with the locks held:
// with any of them configured, nothing is run ahead.
var aheadHooks = []string{"before-detect", "after-detect", "before-build", "after-build", "before-package"}

// goAhead starts the detect and build ahead of the locks, taking the
// checkout's build lock for them, or returns nil when it cannot: no
// revision recorded, a previous revision given, plugins at their hook
// points, or another deploy of this checkout building.
func (r *Run) goAhead(ctx context.Context) *ahead {
	if r.Opts.Previous != "" || r.buildLock != nil {
		return nil
	}
	for _, point := range aheadHooks {
		if r.hasPlugins(point) {
			return nil
		}
	}
	guess := checkout.LastDeployed(r.Cfg.Dir, r.Env.Name)
	if guess.Revision == "" {
		return nil
	}
	lock, err := checkout.TryLock(r.Cfg.Dir)
	if err != nil {
		return nil
	}
	r.buildLock = lock
	ctx, cancel := context.WithCancel(ctx)
	a := &ahead{detectLog: r.Log.Hold(), buildLog: r.Log.Hold(), cancel: cancel, planned: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.detectStart = time.Now()
		// The detect, which takes milliseconds, is never cut short: git
		// killed mid-write could leave its locks behind.
		plan, err := detect.Ahead(context.WithoutCancel(ctx), r.Context, guess.Revision, guess.Release, a.detectLog.Logger)
		a.detectTook = time.Since(a.detectStart)
		if err == nil {
			a.plan = plan
		}
		close(a.planned)
		if err != nil {
			return // detect runs again, and says why
		}
		a.buildStart = time.Now()
		a.built, a.buildErr = build.Build(ctx, r.Cfg, plan, a.buildLog.Logger)
		a.buildTook = time.Since(a.buildStart)
		if a.buildErr != nil {
			return
		}
		// The package's reading and hashing of the files needs no host
		// either. Should it fail, the package scans again and says why.
		start := time.Now()
		if files, err := pack.Scan(ctx, r.Cfg, plan); err == nil {
			a.scan = &scanAhead{start: start, files: files}
		}
	}()
	return a
}

// stop cancels what still runs ahead and waits for it to end; nil, or an
// ahead already stopped or done, is no-op.
func (a *ahead) stop() {
	if a == nil {
		return
	}
	a.stopped.Do(func() {
		a.cancel()
		<-a.done
		if a.scan != nil {
			a.scan.files.Stop() // its hashing, should no plan have ended it
		}
	})
}

// changes reports whether the detect run ahead is done and found changes
// to deploy: the deploy then most likely ships.
func (a *ahead) changes() bool {
	if a == nil {
		return false
	}
	select {
	case <-a.planned:
		return a.plan != nil && carriesChange(a.plan)
	default:
		return false
	}
}

// adopt makes the plan made ahead the run's when the hosts confirm it,
// waiting for the detect if need be, and logs what ran ahead. When they
// do not, but the plan rebased on what they run builds the components the
// build ahead did, that plan is the run's and the build is kept. Else it
// stops what runs ahead and reports false, and detect must run.
func (a *ahead) adopt(ctx context.Context, r *Run) bool {
	if a == nil {
		return false
	}
	select {
	case <-a.planned:
	case <-ctx.Done():
		a.stop()
		return false
	}
	if detect.Confirm(r.Context, a.plan) {
		a.detectLog.Release()
		a.buildLog.Release()
		r.Report.StageFrom("detect", a.detectStart, a.detectTook, nil)
		return true
	}
	start := time.Now()
	if a.plan != nil && carriesChange(a.plan) && detect.Rebase(ctx, r.Context, a.plan) {
		a.buildLog.Release()
		r.Report.Stage("detect", time.Since(start), nil)
		return true
	}
	a.stop()
	return false
}

// build is the build stage of an adopted plan: it waits for the build run
// ahead and takes its result.
func (a *ahead) build(ctx context.Context, r *Run) error {
	select {
	case <-a.done:
	case <-ctx.Done():
		a.stop()
		r.Report.StageFrom("build", a.buildStart, time.Since(a.buildStart), ctx.Err())
		return ctx.Err()
	}
	r.Built = a.built
	err := a.buildErr
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	r.Report.StageFrom("build", a.buildStart, a.buildTook, err)
	return err
}

// scanned is the scan run ahead for an adopted plan, waiting for it; nil
// when there is none, and the package scans.
func (a *ahead) scanned(ctx context.Context, adopted bool) *scanAhead {
	if a == nil || !adopted {
		return nil
	}
	select {
	case <-a.done:
		return a.scan
	case <-ctx.Done():
		return nil
	}
}

// lockBuild takes the checkout's build lock for a build that did not run
// ahead, waiting for another deploy of the checkout to finish packaging.
func (r *Run) lockBuild(ctx context.Context) error {
	if r.buildLock != nil {
		return nil
	}
	lock, err := checkout.Lock(ctx, r.Cfg.Dir, func() {
		r.Log.Infof("waiting for another deploy of this checkout to finish building and packaging")
	})
	if err != nil {
		return err
	}
	r.buildLock = lock
	return nil
}

// unlockBuild lets the build lock go once the archive is written.
func (r *Run) unlockBuild() {
	r.buildLock.Unlock()
	r.buildLock = nil
}
