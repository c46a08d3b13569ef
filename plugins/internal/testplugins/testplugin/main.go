// Command testplugin is a plugin for the host's tests. Its config chooses
// how it behaves in Run, so one binary covers every case:
//
//	mode: ok      return "ok"
//	mode: append  append line to file on the target, read it back, log it
//	mode: fail    return an error with message
//	mode: crash   exit 2 mid-run, saying so on stderr
//	mode: hang    ignore the deadline and SIGTERM, never return
//
// pidfile, when set, receives the process id (written locally), so tests
// can check that the process is gone afterwards.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/stagecoach/stagecoach/plugins/sdk"
)

type config struct {
	Mode    string `json:"mode"`
	File    string `json:"file"`
	Line    string `json:"line"`
	Message string `json:"message"`
	PIDFile string `json:"pidfile"`
}

type testplugin struct{}

func (testplugin) Describe() sdk.Info {
	return sdk.Info{Name: "testplugin", Version: "0.1.0", Hooks: []string{"before-swap", "after-swap"}}
}

func (testplugin) Run(ctx context.Context, req sdk.Request, host sdk.Host) (string, error) {
	var cfg config
	if err := req.Config(&cfg); err != nil {
		return "", err
	}
	if cfg.PIDFile != "" {
		// Written whole, then renamed: a test polling for the file must
		// never read it half written.
		tmp := cfg.PIDFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, cfg.PIDFile); err != nil {
			return "", err
		}
	}
	switch cfg.Mode {
	case "", "ok":
		return "ok", nil
	case "append":
		res, err := host.ExecInput(ctx, "cat >> "+sdk.Quote(cfg.File), []byte(cfg.Line+"\n"))
		if err != nil {
			return "", err
		}
		if err := res.Err(); err != nil {
			return "", err
		}
		data, err := host.ReadFile(ctx, cfg.File)
		if err != nil {
			return "", err
		}
		lines := strings.Count(string(data), "\n")
		host.Logf("appended %s to %s (%d lines) for %s at %s", cfg.Line, cfg.File, lines, req.Release, req.Hook)
		return fmt.Sprintf("%s has %d lines", cfg.File, lines), nil
	case "fail":
		return "", errors.New(cfg.Message)
	case "crash":
		// Written to the process's own stderr, as a runtime crash would be;
		// os.Stderr is relayed over the connection, which dies with us.
		os.NewFile(2, "stderr").WriteString("testplugin: crashing on purpose\n")
		os.Exit(2)
	case "hang":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		<-make(chan struct{})
	}
	return "", fmt.Errorf("unknown mode %q", cfg.Mode)
}

func main() { sdk.Serve(testplugin{}) }
