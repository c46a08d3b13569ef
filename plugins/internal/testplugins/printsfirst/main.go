// Command printsfirst is a plugin that prints a line to stdout before it
// calls sdk.Serve, as a plugin with a stray fmt.Println at start-up does:
// the host's tests check what such a plugin is told.
package main

import (
	"context"
	"fmt"

	"github.com/stagecoach/stagecoach/plugins/sdk"
)

type printsfirst struct{}

func (printsfirst) Describe() sdk.Info { return sdk.Info{Name: "printsfirst", Version: "0.1.0"} }

func (printsfirst) Run(context.Context, sdk.Request, sdk.Host) (string, error) { return "ok", nil }

func main() {
	fmt.Println("printsfirst starting up")
	sdk.Serve(printsfirst{})
}
