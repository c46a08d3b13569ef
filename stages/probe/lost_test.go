package probe

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
)

// TestHealthLostConnectionReconnects: a command check whose connection is
// lost reconnects, once for all the checks sharing it, and polls on over
// the new one. Regression: the checks polled the dead connection until
// the deadline and called a healthy release unhealthy.
func TestHealthLostConnectionReconnects(t *testing.T) {
	host := remotetest.New("web1", remote.NewLocal())
	host.On("health check").Nth(1).LoseConnection()
	var dials atomic.Int64
	target := Target{Host: "local", Runner: host, Reconnect: func(context.Context) (remote.Runner, error) {
		dials.Add(1)
		return host.Connect(), nil
	}}
	checks := []config.HealthCheck{{Command: "true", Timeout: time.Second}, {Command: "true", Timeout: time.Second}}
	// A deadline far longer than the test: polling the lost connection
	// would take all of it.
	wait := config.Wait{Deadline: time.Hour, Interval: time.Hour}
	results, err := Run(context.Background(), checks, wait, target)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("%+v", r)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("reconnected %d times, want once", n)
	}
}

// TestHealthLostConnectionFailsFast: without a way to reconnect, or when
// reconnecting fails, the checks stop at once with the typed
// connection-lost error, for the caller's rollback to handle, rather
// than poll until the deadline.
func TestHealthLostConnectionFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reconnect func(context.Context) (remote.Runner, error)
		want      string
	}{
		{"no reconnect", nil, "connection lost"},
		{"reconnect fails", func(context.Context) (remote.Runner, error) { return nil, errors.New("connection refused") }, "reconnecting failed: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := remotetest.New("web1", remote.NewLocal())
			host.On("health check").LoseConnection()
			target := Target{Host: "local", Runner: host, Reconnect: tc.reconnect}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			wait := config.Wait{Deadline: time.Hour, Interval: 10 * time.Millisecond}
			_, err := Run(ctx, []config.HealthCheck{{Command: "true", Timeout: time.Second}}, wait, target)
			if !remote.IsConnectionLost(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want a connection-lost error saying %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("Run polled until the test's own deadline")
			}
		})
	}
}
