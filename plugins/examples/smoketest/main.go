// Command smoketest is a Stagecoach plugin that tries the new release before
// it goes live: at before-swap it runs a command in the release directory on
// the target, and optionally fetches a URL, failing the deploy when either
// fails.
//
//	plugins:
//	  - name: smoketest
//	    path: plugins/examples/smoketest
//	    at: before-swap
//	    config:
//	      command: test -x backend/server && ./backend/server version
//	      expect: "restaurant"       # optional: stdout must contain it
//	      url: http://127.0.0.1:8080/healthz   # optional: GET from the deploying machine
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/stagecoach/stagecoach/plugins/sdk"
)

type config struct {
	Command string `json:"command"`
	Expect  string `json:"expect"`
	URL     string `json:"url"`
	Status  int    `json:"status"` // expected HTTP status; default 200
}

type smoketest struct{}

func (smoketest) Describe() sdk.Info {
	return sdk.Info{Name: "smoketest", Version: "1.0.0", Hooks: []string{"before-swap", "after-swap", "after-health"}}
}

func (smoketest) Run(ctx context.Context, req sdk.Request, host sdk.Host) (string, error) {
	cfg := config{Command: "test -x backend/server && ./backend/server version", Status: 200}
	if err := req.Config(&cfg); err != nil {
		return "", err
	}
	var done []string
	if cfg.Command != "" {
		res, err := host.Exec(ctx, "cd "+sdk.Quote(req.ReleasePath)+" && "+cfg.Command)
		if err != nil {
			return "", err
		}
		if err := res.Err(); err != nil {
			return "", fmt.Errorf("%s in release %s: %w", cfg.Command, req.Release, err)
		}
		out := strings.TrimSpace(string(res.Stdout))
		if cfg.Expect != "" && !strings.Contains(out, cfg.Expect) {
			return "", fmt.Errorf("%s printed %q, expected it to contain %q", cfg.Command, out, cfg.Expect)
		}
		host.Logf("%s: %s", cfg.Command, firstLine(out))
		done = append(done, "command ok")
	}
	if cfg.URL != "" {
		if err := get(ctx, cfg.URL, cfg.Status); err != nil {
			return "", err
		}
		host.Logf("GET %s: %d", cfg.URL, cfg.Status)
		done = append(done, fmt.Sprintf("GET %d", cfg.Status))
	}
	return "release " + req.Release + ": " + strings.Join(done, ", "), nil
}

func get(ctx context.Context, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, expected %d: %s", url, resp.StatusCode, want, strings.TrimSpace(string(body)))
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func main() { sdk.Serve(smoketest{}) }
