package targets

import (
	"context"
	"fmt"
	"os"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
)

// Check verifies the live release on every host (health, services, files, disk, lock); silent when all pass, for cron.
func Check(ctx context.Context,
	env *string, // environment to check (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated (STAGECOACH_HOSTS)
	json *string, // write the result as JSON to this file; - or 1 prints it on stdout (STAGECOACH_JSON)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, JSON: json}); err != nil {
		return err
	}
	ctx, stop := interruptible(ctx)
	defer stop()
	r, err := current()
	if err != nil {
		return err
	}
	r.Command = "check"
	rep, err := r.Check(ctx)
	if rep != nil {
		if werr := writeCheckJSON(rep, checkJSON()); werr != nil && err == nil {
			err = werr
		}
	}
	return r.Redact(err)
}

// checkJSON is where the check's JSON goes: -json, or STAGECOACH_JSON.
func checkJSON() string {
	if called.JSON != nil {
		return *called.JSON
	}
	return os.Getenv("STAGECOACH_JSON")
}

// writeCheckJSON writes the report as -json or STAGECOACH_JSON asks: "1" (or
// "true", "yes") prints it on stdout, any other value but "0" and "false"
// is a file to write it to.
func writeCheckJSON(rep *check.Report, dest string) error {
	switch dest {
	case "", "0", "false", "no":
		return nil
	}
	data, err := rep.JSON()
	if err != nil {
		return err
	}
	switch dest {
	case "1", "true", "yes", "-":
		_, err = os.Stdout.Write(data)
		return err
	}
	if err := run.WriteFileAtomic(dest, data); err != nil {
		return exitcode.With(exitcode.BadConfig, fmt.Errorf("check JSON (-json, STAGECOACH_JSON): %w", err))
	}
	return nil
}
