// Package probe runs health checks, HTTP and command, with retries until
// a deadline: the health step, rollbacks and the cron check use it.
package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// Result is the outcome of one health check on one host.
type Result struct {
	Host     string        `json:"host"`
	Check    string        `json:"check"`
	OK       bool          `json:"ok"`
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration_ns"`
	Detail   string        `json:"detail"` // why the last attempt failed, or the status seen
	// Script is a command check's shell source, for debug lines only:
	// Check names the check by its position.
	Script string `json:"-"`
}

// Run runs every check against one host, retrying each at wait.Interval
// until it passes or wait.Deadline has passed since the start. HTTP checks
// run from the deploying machine ({host} in the URL becomes the host's
// name); command checks run on the host through r. The error lists every
// check that never passed.
func Run(ctx context.Context, checks []config.HealthCheck, wait config.Wait, host string, r remote.Runner) ([]Result, error) {
	results := make([]Result, len(checks))
	deadline := time.Now().Add(wait.Deadline)
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = retryCheck(ctx, c, i, wait.Interval, deadline, host, r)
		}()
	}
	wg.Wait()
	var failed []string
	for _, res := range results {
		if !res.OK {
			failed = append(failed, fmt.Sprintf("%s: %s (after %d attempts)", res.Check, res.Detail, res.Attempts))
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("unhealthy: %s", strings.Join(failed, "; "))
	}
	return results, nil
}

func retryCheck(ctx context.Context, c config.HealthCheck, i int, interval time.Duration, deadline time.Time, host string, r remote.Runner) Result {
	res := Result{Host: host, Check: describeCheck(c, i, host), Script: c.Command}
	start := time.Now()
	for {
		res.Attempts++
		err := runCheck(ctx, c, host, r)
		res.Duration = time.Since(start)
		if err == nil {
			res.OK, res.Detail = true, "ok"
			return res
		}
		res.Detail = err.Error()
		if time.Now().Add(interval).After(deadline) {
			return res
		}
		select {
		case <-ctx.Done():
			res.Detail = fmt.Sprintf("%s (stopped: %v)", res.Detail, ctx.Err())
			return res
		case <-time.After(interval):
		}
	}
}

// describeCheck names the i-th check: health[0] GET <url>, or health[1]
// command, not by its script, which may be long and span lines, while the
// name shows in every line and error about the check.
func describeCheck(c config.HealthCheck, i int, host string) string {
	if c.HTTP != "" {
		return fmt.Sprintf("health[%d] GET %s", i, hostURL(c.HTTP, host))
	}
	return fmt.Sprintf("health[%d] command", i)
}

// hostURL fills in {host} so one check serves every host of an environment.
func hostURL(url, host string) string {
	if t, err := remote.ParseTarget(host); err == nil {
		host = t.Host
	}
	return strings.ReplaceAll(url, "{host}", host)
}

// runCheck makes one attempt of c, bounded by its timeout.
func runCheck(ctx context.Context, c config.HealthCheck, host string, r remote.Runner) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Command != "" {
		_, err := r.Run(ctx, remote.Script("health check", c.Command))
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", c.Timeout)
		}
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL(c.HTTP, host), nil)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", c.Timeout)
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != c.Expect {
		return fmt.Errorf("status %d, expected %d: %s", resp.StatusCode, c.Expect, remote.Tail(string(body), 3))
	}
	if c.Body != "" && !strings.Contains(string(body), c.Body) {
		return fmt.Errorf("status %d but the body lacks %q: %s", resp.StatusCode, c.Body, remote.Tail(string(body), 3))
	}
	return nil
}

// healthClient keeps no connections between attempts, so a check always
// reaches the server that is running now, not one from before a restart.
var healthClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}
