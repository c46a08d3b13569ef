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
	"github.com/stagecoach/stagecoach/stages/server"
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

// Target is the host checks run against and what they need of it.
type Target struct {
	Host   string // as configured: "deploy@web1:22" or "local"
	Runner remote.Runner
	Layout server.Layout
	// Release is the release being checked: command checks run in its
	// directory with shared/.env loaded and STAGECOACH_RELEASE,
	// STAGECOACH_ROOT and STAGECOACH_HOST set. "" (nothing deployed) runs
	// them in the login directory.
	Release string
	// Values are the host's values (run.Context.HostValues), which
	// ${NAME} in a header stands for.
	Values map[string]string
	// Vars are the host's own vars, which {vars.NAME} in a check's URL or
	// command stands for.
	Vars map[string]string
	// Port, when set, is the slot the checks are of: command checks get
	// it as PORT, over the PORT shared/.env may set.
	Port int
	// Reconnect, when set, replaces a lost connection by a new one (see
	// fleet.Reconnect) and returns it. A lost connection says nothing of
	// the release's health: the checks reconnect and poll on within the
	// deadline, rather than poll a dead connection until it passes and
	// call the release unhealthy. Without Reconnect, or when reconnecting
	// fails, Run stops at once with an error wrapping
	// remote.ErrConnectionLost, for the caller to handle as such.
	Reconnect func(ctx context.Context) (remote.Runner, error)
}

// link is the connection a target's checks share: the first check to
// find it lost reconnects, for all of them.
type link struct {
	mu        sync.Mutex
	runner    remote.Runner
	reconnect func(ctx context.Context) (remote.Runner, error)
	err       error // reconnecting failed: every check stops with it
}

func (l *link) current() remote.Runner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runner
}

// renew replaces lost, the runner a check found lost, unless another
// check did so already.
func (l *link) renew(ctx context.Context, lost remote.Runner, cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.runner != lost {
		return nil
	}
	if l.reconnect == nil {
		l.err = cause
		return l.err
	}
	r, err := l.reconnect(ctx)
	if err != nil {
		l.err = fmt.Errorf("%w; reconnecting failed: %w", cause, err)
		return l.err
	}
	l.runner = r
	return nil
}

// Run runs every check against one host, retrying each at wait.Interval
// until it passes or wait.Deadline has passed since the start. HTTP checks
// run from the deploying machine ({host} in the URL becomes the host's
// name); command checks run on the host through t.Runner. The error lists
// every check that never passed.
func Run(ctx context.Context, checks []config.HealthCheck, wait config.Wait, t Target) ([]Result, error) {
	results := make([]Result, len(checks))
	deadline := time.Now().Add(wait.Deadline)
	conn := &link{runner: t.Runner, reconnect: t.Reconnect}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = retryCheck(ctx, c, i, wait.Interval, deadline, t, conn)
		}()
	}
	wg.Wait()
	if conn.err != nil {
		return results, fmt.Errorf("health checks on %s: %w", t.Host, conn.err)
	}
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

func retryCheck(ctx context.Context, c config.HealthCheck, i int, interval time.Duration, deadline time.Time, t Target, conn *link) Result {
	c = WithVars(c, t.Vars)
	res := Result{Host: t.Host, Check: describeCheck(c, i, t.Host), Script: c.Command}
	headers, secrets := c.ResolveHeaders(t.Values)
	start := time.Now()
	for {
		res.Attempts++
		runner := conn.current()
		t.Runner = runner
		err := runCheck(ctx, c, headers, t)
		res.Duration = time.Since(start)
		if err == nil {
			res.OK, res.Detail = true, "ok"
			return res
		}
		// A server may echo a header back in its error page.
		res.Detail = mask(err.Error(), secrets)
		if c.Command != "" && remote.IsConnectionLost(err) {
			if err := conn.renew(ctx, runner, err); err != nil {
				res.Detail = mask(err.Error(), secrets)
				return res
			}
			if time.Now().Before(deadline) {
				continue // over the new connection at once
			}
		}
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

// WithVars is c with {vars.NAME} filled in from vars: as it is in the
// URL, and as one shell word (quoted) in the command, so that a value
// cannot change what the command runs. The config has checked that every
// host sets every name its checks refer to.
func WithVars(c config.HealthCheck, vars map[string]string) config.HealthCheck {
	fill := func(s string, quote bool) string {
		return config.HostVarRef.ReplaceAllStringFunc(s, func(ref string) string {
			v, ok := vars[config.HostVarRef.FindStringSubmatch(ref)[1]]
			switch {
			case !ok:
				return ref
			case quote:
				return remote.Quote(v)
			}
			return v
		})
	}
	c.HTTP, c.Command = fill(c.HTTP, false), fill(c.Command, true)
	return c
}

// mask replaces every secret in s, as ui.Logger.Redact does.
func mask(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

// command returns what runs command check c on t.
func command(c config.HealthCheck, t Target) (remote.Command, error) {
	if t.Release == "" {
		return remote.Script("health check", c.Command), nil
	}
	if t.Port != 0 {
		return server.SlotHealthCommand(t.Layout, t.Release, t.Host, t.Port, c.Command)
	}
	return server.HealthCommand(t.Layout, t.Release, t.Host, c.Command)
}

// runCheck makes one attempt of c, bounded by its timeout; headers are
// c's, resolved.
func runCheck(ctx context.Context, c config.HealthCheck, headers map[string]string, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	host := t.Host
	if c.Command != "" {
		cmd, err := command(c, t)
		if err != nil {
			return err
		}
		_, err = t.Runner.Run(ctx, cmd)
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", c.Timeout)
		}
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL(c.HTTP, host), nil)
	if err != nil {
		return err
	}
	for name, value := range headers {
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = value
			continue
		}
		req.Header.Set(name, value)
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
