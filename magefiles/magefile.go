//go:build mage

// Stagecoach's own targets: the deploy targets (imported, so this repository
// deploys its example app with them) and the developer targets below.
package main

import (
	"context"
	"os"
	"os/exec"

	//mage:import
	_ "github.com/stagecoach/stagecoach/stages/targets"
)

// Test runs every test of the project, including the example application's, then the tests that start no server again under the race detector.
func Test(ctx context.Context) error {
	npm := exec.CommandContext(ctx, "npm", "test")
	npm.Dir = "examples/restaurant/frontend"
	npm.Stdout, npm.Stderr = os.Stdout, os.Stderr
	if err := npm.Run(); err != nil {
		return err
	}
	if err := goCmd(ctx, "examples/restaurant/backend", "test", "-count=1", "./..."); err != nil {
		return err
	}
	// The end-to-end package alone runs for many minutes, past go test's
	// default ten-minute limit per package.
	if err := goCmd(ctx, ".", "test", "-count=1", "-timeout=45m", "./..."); err != nil {
		return err
	}
	// The race detector over the tests that start no server: the fake
	// hosts' fan-out, heartbeats and cancellation, the chaos driver's
	// faulted runs among them, are where races hide.
	return goCmd(ctx, ".", "test", "-short", "-race", "-count=1", "-timeout=30m", "./...")
}

// Bench runs the Go benchmarks (transport, packaging, integrity, plugins), with memory statistics.
func Bench(ctx context.Context) error {
	return goCmd(ctx, ".", "test", "-run=^$", "-bench=.", "-skip=DeployComparison|FleetScale", "-benchmem", "./...")
}

// BenchDeploy compares full, small-change and no-change deploys with tar+scp+ssh and rsync, on loopback and slow links, with light and heavy login shells.
func BenchDeploy(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "scripts/bench-deploy")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// BenchFleet deploys a small change to 1, 4, 16 and 32 real sshd hosts and compares each fleet size with parallel rsync --link-dest + ssh.
func BenchFleet(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "scripts/bench-fleet")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// goCmd runs the go tool in dir with output passed through. It uses
// exec.CommandContext so Ctrl-C and `mage -t` stop it.
func goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}
