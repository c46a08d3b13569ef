package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// BenchmarkSmallChangeSlowLoginShell deploys small changes to a server
// whose account's login shell takes 0.2 s to start, as one loading rbenv,
// nvm or pyenv does, side by side: commands on the persistent shell
// agent, and the baseline of one SSH session (one login shell) per
// command. Besides the time of a whole deploy it reports the time of the
// remote stages alone (ship, swap, health, cleanup: what the login shell
// slows down), and the sessions and round trips a deploy costs.
func BenchmarkSmallChangeSlowLoginShell(b *testing.B) {
	host := testenv.StartSSHD(b, testenv.WithLoginDelay(200*time.Millisecond))
	for _, mode := range []struct {
		name   string
		agents int // remote.SSHConfig.MaxAgents
	}{{"shell agent", 0}, {"session per command", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			p := testenv.NewProject(b, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
			deployVia(b, p, host, mode.agents)
			var remoteTook time.Duration
			var sessions, trips int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				changeFrontend(b, p, fmt.Sprintf("change %d of %s", i, mode.name))
				b.StartTimer()
				r := deployVia(b, p, host, mode.agents)
				for _, s := range r.Report.Stages {
					switch s.Name {
					case "ship", "swap", "health", "cleanup":
						remoteTook += s.Duration
					}
				}
				st := r.Hosts[0].Runner.Stats()
				sessions, trips = sessions+st.Sessions, trips+st.RoundTrips
			}
			b.ReportMetric(float64(remoteTook.Milliseconds())/float64(b.N), "remote-ms/op")
			b.ReportMetric(float64(sessions)/float64(b.N), "sessions/op")
			b.ReportMetric(float64(trips)/float64(b.N), "round-trips/op")
		})
	}
}

// deployVia deploys p to host with at most agents shell agents (-1: a
// session per command), failing the benchmark on error.
func deployVia(b *testing.B, p *testenv.Project, host *testenv.Host, agents int) *pipeline.Run {
	b.Helper()
	r, out := openRun(b, p, pipeline.Options{})
	// The run closes its connection when done: keep the runner, whose
	// counts the caller reads.
	var runner remote.Runner
	r.Fleet.Dial = func(ctx context.Context, name string) (remote.Runner, error) {
		cfg := remote.NewSSHConfig(name)
		cfg.KnownHostsFile, cfg.IdentityFiles, cfg.MaxAgents = host.KnownHostsFile, []string{host.IdentityFile}, agents
		var err error
		runner, err = remote.DialSSH(ctx, cfg)
		return runner, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.Deploy(ctx); err != nil {
		b.Fatalf("deploy: %v\n%s", err, out)
	}
	r.Hosts[0].Runner = runner
	return r
}
