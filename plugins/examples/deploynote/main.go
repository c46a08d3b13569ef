// Command deploynote is a Stagecoach plugin that leaves a note on the server
// after the swap: <root>/shared/DEPLOY_NOTE, saying which release is live,
// its revision, what changed and a message from the config.
//
//	plugins:
//	  - name: deploynote
//	    path: plugins/examples/deploynote
//	    at: after-swap
//	    config:
//	      message: "Deployed by CI"
//	      file: shared/DEPLOY_NOTE   # relative to the deploy root (the default)
package main

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/plugins/sdk"
)

type config struct {
	Message string `json:"message"`
	File    string `json:"file"`
}

type deploynote struct{}

func (deploynote) Describe() sdk.Info {
	return sdk.Info{Name: "deploynote", Version: "1.0.0", Hooks: []string{"after-swap", "after-health", "after-cleanup"}}
}

func (deploynote) Run(ctx context.Context, req sdk.Request, host sdk.Host) (string, error) {
	cfg := config{File: "shared/DEPLOY_NOTE"}
	if err := req.Config(&cfg); err != nil {
		return "", err
	}
	file := cfg.File
	if !path.IsAbs(file) {
		file = path.Join(req.Root, file)
	}
	changed := strings.Join(req.Changed, ", ")
	if changed == "" {
		changed = "nothing"
	}
	note := fmt.Sprintf("release: %s\nrevision: %s\nprevious: %s\nchanged: %s\nenvironment: %s\ntime: %s\nmessage: %s\n",
		req.Release, req.Revision, req.Previous, changed, req.Environment,
		time.Now().UTC().Format(time.RFC3339), cfg.Message)
	// Write beside the note and rename, so a reader never sees half of it.
	tmp := file + ".tmp"
	script := fmt.Sprintf("mkdir -p %s && cat > %s && mv -f %s %s",
		sdk.Quote(path.Dir(file)), sdk.Quote(tmp), sdk.Quote(tmp), sdk.Quote(file))
	res, err := host.ExecInput(ctx, script, []byte(note))
	if err != nil {
		return "", err
	}
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	host.Logf("wrote %s for release %s", file, req.Release)
	return "note written to " + file, nil
}

func main() { sdk.Serve(deploynote{}) }
