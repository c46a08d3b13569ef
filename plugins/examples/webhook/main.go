// Command webhook is a Stagecoach notification plugin: at on-success,
// on-failure or after-rollback it POSTs the deploy's outcome as JSON to a
// URL. The URL is a secret, so it is not in stagecoach.yml: url_env names
// the environment variable that holds it, which the plugin reads from the
// environment Stagecoach runs in (plugins inherit it; in CI, a secret).
// The plugin never prints the URL. A receiver that is down or answers
// other than 2xx fails the plugin, which Stagecoach reports as a warning:
// the deploy's outcome stands.
//
//	plugins:
//	  - name: notify
//	    path: plugins/examples/webhook
//	    at: on-failure
//	    config:
//	      url_env: DEPLOY_WEBHOOK_URL   # required
//	      format: slack                 # json (default), slack or mattermost: {"text": "..."}
//	      timeout: 10s                  # per request (default 10s)
//
// format json sends {"app_environment", "hook", "result", "stage",
// "cause", "release", "revision", "previous", "duration_ms", "hosts"};
// slack and mattermost send {"text": "<one line per host, cause>"}.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/plugins/sdk"
)

type config struct {
	URLEnv  string `json:"url_env"`
	Format  string `json:"format"`
	Timeout string `json:"timeout"`
}

// Payload is the body of format json.
type Payload struct {
	Environment string        `json:"environment"`
	Hook        string        `json:"hook"`
	Result      string        `json:"result"`
	Stage       string        `json:"stage,omitempty"`
	Cause       string        `json:"cause,omitempty"`
	Release     string        `json:"release,omitempty"`
	Revision    string        `json:"revision,omitempty"`
	Previous    string        `json:"previous,omitempty"`
	DurationMS  int64         `json:"duration_ms"`
	Hosts       []HostPayload `json:"hosts"`
}

// HostPayload is one host in Payload.
type HostPayload struct {
	Host     string `json:"host"`
	Before   string `json:"release_before,omitempty"`
	After    string `json:"release_after,omitempty"`
	Switched bool   `json:"switched"`
	Migrated bool   `json:"migrated"`
}

type webhook struct {
	getenv func(string) string
	client *http.Client
}

func (webhook) Describe() sdk.Info {
	return sdk.Info{Name: "webhook", Version: "1.0.0", Hooks: []string{"on-success", "on-failure", "after-rollback"}}
}

func (w webhook) Run(ctx context.Context, req sdk.Request, host sdk.Host) (string, error) {
	cfg := config{Format: "json", Timeout: "10s"}
	if err := req.Config(&cfg); err != nil {
		return "", err
	}
	if cfg.URLEnv == "" {
		return "", errors.New("config url_env is required: the environment variable that holds the webhook URL")
	}
	target := strings.TrimSpace(w.getenv(cfg.URLEnv))
	if target == "" {
		return "", fmt.Errorf("environment variable %s (config url_env) is not set: it holds the webhook URL", cfg.URLEnv)
	}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil || timeout <= 0 {
		return "", fmt.Errorf("config timeout %q: expected a duration such as 10s", cfg.Timeout)
	}
	body, err := Body(cfg.Format, req)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("the URL in %s is not valid", cfg.URLEnv)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "stagecoach-webhook/1.0")
	resp, err := w.client.Do(hr)
	if err != nil {
		// url.Error carries the URL, which is a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("POST to the URL in %s: %v", cfg.URLEnv, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("POST to the URL in %s: status %d: %s", cfg.URLEnv, resp.StatusCode, strings.TrimSpace(string(reply)))
	}
	host.Debugf("POST to the URL in %s: status %d", cfg.URLEnv, resp.StatusCode)
	return fmt.Sprintf("%s notification sent (%s, status %d)", req.Hook, cfg.Format, resp.StatusCode), nil
}

// Body is the request body for format: json, slack or mattermost.
func Body(format string, req sdk.Request) ([]byte, error) {
	o := req.Outcome
	if o == nil {
		return nil, fmt.Errorf("no deploy outcome at %s: configure webhook at on-success, on-failure or after-rollback", req.Hook)
	}
	switch format {
	case "json", "":
		p := Payload{Environment: req.Environment, Hook: req.Hook, Result: o.Result, Stage: o.Stage, Cause: o.Cause,
			Release: req.Release, Revision: req.Revision, Previous: req.Previous, DurationMS: o.Duration.Milliseconds(),
			Hosts: []HostPayload{}}
		for _, h := range o.Hosts {
			p.Hosts = append(p.Hosts, HostPayload{Host: h.Host, Before: h.Before, After: h.After, Switched: h.Switched, Migrated: h.Migrated})
		}
		return json.Marshal(p)
	case "slack", "mattermost":
		return json.Marshal(map[string]string{"text": Text(req)})
	}
	return nil, fmt.Errorf("config format %q: expected json, slack or mattermost", format)
}

// Text is the message of the slack and mattermost formats.
func Text(req sdk.Request) string {
	o := req.Outcome
	var b strings.Builder
	what := "Deploy"
	if req.Hook == "after-rollback" {
		what = "Rollback after a failed deploy"
	}
	fmt.Fprintf(&b, "%s of %s to %s: %s", what, short(req.Revision), req.Environment, o.Result)
	if o.Stage != "" {
		fmt.Fprintf(&b, " at %s", o.Stage)
	}
	if req.Release != "" {
		fmt.Fprintf(&b, " (release %s)", req.Release)
	}
	for _, h := range o.Hosts {
		fmt.Fprintf(&b, "\n• %s: %s → %s", h.Host, orNone(h.Before), orNone(h.After))
	}
	if o.Cause != "" {
		fmt.Fprintf(&b, "\n%s", o.Cause)
	}
	return b.String()
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return orNone(rev)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func main() { sdk.Serve(webhook{getenv: os.Getenv, client: &http.Client{}}) }
