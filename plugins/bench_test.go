package plugins_test

import (
	"context"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// BenchmarkNoopPlugin is the cost a plugin adds at one hook point: start
// the process, handshake, Describe, Run (returning at once), stop and reap.
func BenchmarkNoopPlugin(b *testing.B) {
	spec := config.Plugin{Name: "noop", Path: bin(b, "testplugin"), At: "after-swap", Timeout: 30 * time.Second}
	dc := plugins.Context{Release: "r", Dir: b.TempDir()}
	r := remote.NewLocal()
	log := ui.Discard()
	ctx := context.Background()
	for b.Loop() {
		if _, err := plugins.Run(ctx, spec, dc, r, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNoopPluginWithChecksum adds the SHA-256 check of the executable
// that a pinned plugin pays on every start.
func BenchmarkNoopPluginWithChecksum(b *testing.B) {
	path := bin(b, "testplugin")
	spec := config.Plugin{Name: "noop", Path: path, At: "after-swap", Timeout: 30 * time.Second}
	sum, err := fileSum(path)
	if err != nil {
		b.Fatal(err)
	}
	spec.SHA256 = sum
	dc := plugins.Context{Release: "r", Dir: b.TempDir()}
	r := remote.NewLocal()
	ctx := context.Background()
	for b.Loop() {
		if _, err := plugins.Run(ctx, spec, dc, r, ui.Discard()); err != nil {
			b.Fatal(err)
		}
	}
}
