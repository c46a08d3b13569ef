// Package targets is Stagecoach's Mage targets. A project adopts Stagecoach
// with a magefile that imports them:
//
//	//go:build mage
//	package main
//
//	import (
//		//mage:import
//		_ "github.com/stagecoach/stagecoach/stages/targets"
//	)
//
// Targets take no flags; these environment variables set their options:
//
//	STAGECOACH_CONFIG       config file (default stagecoach.yml)
//	STAGECOACH_ENV          environment to deploy (default: the first one)
//	STAGECOACH_ALLOW_DIRTY  1 to deploy uncommitted changes
//	STAGECOACH_FORCE        1 for a full deploy when the deployed revision is unknown to git
//	STAGECOACH_PREVIOUS     treat this revision as the last deployed one
package targets

import (
	"context"
	"os"
	"sync"

	"github.com/magefile/mage/mg"

	"github.com/stagecoach/stagecoach/stages"
	"github.com/stagecoach/stagecoach/stages/ui"
)

var (
	runOnce sync.Once
	run     *stages.Run
	runErr  error
)

// current opens the run shared by every target of this process, so that a
// chain of targets loads the config once and passes results along.
func current() (*stages.Run, error) {
	runOnce.Do(func() {
		run, runErr = stages.Open(optionsFromEnv(), ui.Default())
	})
	return run, runErr
}

func optionsFromEnv() stages.Options {
	return stages.Options{
		ConfigPath:  os.Getenv("STAGECOACH_CONFIG"),
		Environment: os.Getenv("STAGECOACH_ENV"),
		AllowDirty:  flag("STAGECOACH_ALLOW_DIRTY"),
		Force:       flag("STAGECOACH_FORCE"),
		Previous:    os.Getenv("STAGECOACH_PREVIOUS"),
	}
}

func flag(name string) bool {
	switch os.Getenv(name) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// Detect shows what changed since the last successful deploy, per component.
func Detect(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	return r.Detect(ctx)
}

// Build builds the components that changed (npm install only when the lockfile did).
func Build(ctx context.Context) error {
	mg.CtxDeps(ctx, Detect)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Build(ctx)
}

// Package writes the release archive and its SHA-256 manifest.
func Package(ctx context.Context) error {
	mg.CtxDeps(ctx, Build)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Package(ctx)
}
