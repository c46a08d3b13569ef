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
func Check(ctx context.Context) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	r, err := current()
	if err != nil {
		return err
	}
	r.Command = "check"
	rep, err := r.Check(ctx)
	if rep != nil {
		if werr := writeCheckJSON(rep, os.Getenv("STAGECOACH_JSON")); werr != nil && err == nil {
			err = werr
		}
	}
	return r.Redact(err)
}

// writeCheckJSON writes the report as STAGECOACH_JSON asks: "1" (or
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
		return exitcode.With(exitcode.BadConfig, fmt.Errorf("STAGECOACH_JSON: %w", err))
	}
	return nil
}
