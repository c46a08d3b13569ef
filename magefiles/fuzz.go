//go:build mage

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// fuzzName is a fuzz target's name as go test -list prints it.
var fuzzName = regexp.MustCompile(`^Fuzz[A-Za-z0-9_]*$`)

// Fuzz runs every fuzz target for a bounded time: 10s each, or STAGECOACH_FUZZTIME (a go test -fuzztime such as 2m).
func Fuzz(ctx context.Context) error {
	fuzztime := os.Getenv("STAGECOACH_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "10s"
	}
	targets, err := fuzzTargets(ctx)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("fuzz: go test -list found no fuzz targets")
	}
	// go test takes one -fuzz target per package and run.
	for _, t := range targets {
		if err := fuzzOne(ctx, t, fuzztime); err != nil {
			return err
		}
	}
	return nil
}

// fuzzOne fuzzes t for fuzztime. Go's fuzzing engine can end a run that
// found nothing with "context deadline exceeded" when the time is up while
// a worker is busy; such a run wrote no failing input, so it is tried once
// more, and a second such ending counts as a pass. A real failure always
// writes its input to testdata/fuzz.
func fuzzOne(ctx context.Context, t fuzzTarget, fuzztime string) error {
	for attempt := 1; ; attempt++ {
		fmt.Printf("fuzz: %s %s for %s\n", t.pkg, t.name, fuzztime)
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-fuzz=^"+t.name+"$", "-fuzztime="+fuzztime, t.pkg)
		cmd.Stdout = io.MultiWriter(os.Stdout, &out)
		cmd.Stderr = io.MultiWriter(os.Stderr, &out)
		err := cmd.Run()
		if err == nil {
			return nil
		}
		engineTimeout := strings.Contains(out.String(), "context deadline exceeded") &&
			!strings.Contains(out.String(), "Failing input written to")
		switch {
		case !engineTimeout:
			return fmt.Errorf("fuzz %s in %s: %w (the failing input is in the package's testdata/fuzz/%s)", t.name, t.pkg, err, t.name)
		case attempt == 1:
			fmt.Printf("fuzz: %s ended with the fuzzing engine's deadline and no failing input; once more\n", t.name)
		default:
			fmt.Printf("fuzz: %s ended with the fuzzing engine's deadline again and no failing input: passed\n", t.name)
			return nil
		}
	}
}

type fuzzTarget struct{ pkg, name string }

// fuzzTargets lists the fuzz targets of every package, as go test -list
// prints them: a package's names, then its "ok <package>" line.
func fuzzTargets(ctx context.Context) ([]fuzzTarget, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-list=^Fuzz", "./...")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("fuzz: list the fuzz targets: %w", err)
	}
	var out []fuzzTarget
	var names []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		switch f := strings.Fields(line); {
		case fuzzName.MatchString(line):
			names = append(names, line)
		case len(f) >= 2 && f[0] == "ok":
			for _, n := range names {
				out = append(out, fuzzTarget{pkg: f[1], name: n})
			}
			names = nil
		}
	}
	return out, sc.Err()
}
