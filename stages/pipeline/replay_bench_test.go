package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// BenchmarkFleetReplay measures the orchestration's own client cost at
// 10, 100 and 1,000 simulated hosts, beyond what fakes starting real
// shells (BenchmarkFleetDeploy) can reach: each change is deployed once
// for real to one host, through the real scripts over this machine's
// shell, and every answer recorded; then the same change is deployed to
// the whole fleet, every host answered from the recording after 50 ms,
// as a round trip on a real link would be, with nothing run. Besides the
// time per deploy it reports the client's CPU and peak heap per host and
// the peaks of goroutines and open file descriptors: where a fleet this
// big would stop scaling. Compare hosts=1000 with hosts=10: the target is
// at most 15 times the time, under 500 MB. Run it with -benchtime=1x or
// a few x; the recording deploys are not timed.
func BenchmarkFleetReplay(b *testing.B) {
	for _, tc := range []struct{ hosts, parallel int }{{10, 10}, {100, 100}, {1000, 100}} {
		b.Run(fmt.Sprintf("hosts=%d/parallel=%d", tc.hosts, tc.parallel), func(b *testing.B) {
			e := runtest.New(b, runtest.Options{Hosts: tc.hosts, Environment: fmt.Sprintf("    parallel: %d\n", tc.parallel)})
			first := e.Names[0]
			if _, err := recordDeploy(b, e, first); err != nil {
				b.Fatalf("first deploy: %v", err)
			}
			var cpu time.Duration
			var hosts int
			peak := &peaks{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e.Write(b, "site/index.html", fmt.Sprintf("<h1>v%d</h1>\n", i+2))
				e.Commit(b, "change")
				rec, err := recordDeploy(b, e, first)
				if err != nil {
					b.Fatalf("recorded deploy: %v", err)
				}
				r := New(e.Open(b, run.Options{}, func(rc *run.Context) {
					release := func() string {
						if rc.Plan != nil {
							return rc.Plan.Release
						}
						return ""
					}
					rc.Fleet.Dial = func(ctx context.Context, name string) (remote.Runner, error) {
						return &replayRunner{rec: rec, name: name, root: rootOf(e, name), id: release, delay: 50 * time.Millisecond}, nil
					}
				}))
				before := cpuTime()
				stop := peak.watch()
				b.StartTimer()
				if err := r.Deploy(context.Background()); err != nil {
					b.Fatalf("replayed deploy: %v\n%s", err, tail(e.Log.String(), 4000))
				}
				b.StopTimer()
				stop()
				cpu += cpuTime() - before
				hosts = len(r.Hosts)
				var stages []string
				for _, st := range r.Report.Stages {
					stages = append(stages, fmt.Sprintf("%s %s", st.Name, st.Duration.Round(time.Millisecond)))
				}
				b.Logf("%d hosts: %s; stages: %s", hosts, r.Report.Duration.Round(time.Millisecond), strings.Join(stages, ", "))
			}
			if hosts != tc.hosts {
				b.Fatalf("the replayed deploy reached %d hosts, want %d", hosts, tc.hosts)
			}
			n := float64(b.N)
			b.ReportMetric(cpu.Seconds()/n, "cpu-s/op")
			b.ReportMetric(float64(cpu.Microseconds())/n/float64(tc.hosts), "cpu-µs/host")
			b.ReportMetric(float64(peak.heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(peak.heap)/1024/float64(tc.hosts), "peak-heap-KB/host")
			b.ReportMetric(float64(peak.goroutines), "peak-goroutines")
			b.ReportMetric(float64(peak.fds), "peak-fds")
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func rootOf(e *runtest.Env, name string) string {
	for i, n := range e.Names {
		if n == name {
			return e.Roots[i]
		}
	}
	return ""
}

// recordDeploy deploys the last commit to host alone, for real, and
// returns every answer its runner gave.
func recordDeploy(b *testing.B, e *runtest.Env, host string) (*recording, error) {
	rec := &recording{root: rootOf(e, host), runs: map[string][]answer{}}
	r := New(e.Open(b, run.Options{Hosts: host}, func(rc *run.Context) {
		dial := rc.Fleet.Dial
		rc.Fleet.Dial = func(ctx context.Context, name string) (remote.Runner, error) {
			inner, err := dial(ctx, name)
			if err != nil {
				return nil, err
			}
			return &recorder{Runner: inner, rec: rec}, nil
		}
	}))
	err := r.Deploy(context.Background())
	if r.Plan != nil {
		rec.id = r.Plan.Release
	}
	return rec, err
}

// recording is what one host answered in one deploy: for each command,
// by its description, the answers in the order they came. The host's
// root and the release id are taken out of the descriptions, and put
// back into a replayed answer as the replaying host's.
type recording struct {
	root, id string
	mu       sync.Mutex
	runs     map[string][]answer // by raw description until the id is known
}

type answer struct {
	desc string // raw
	res  remote.Result
	err  error
}

func (rec *recording) add(desc string, res remote.Result, err error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.runs[desc] = append(rec.runs[desc], answer{desc: desc, res: res, err: err})
}

// lookup finds the answers for desc as a host with root asks for it
// while deploying release id.
func (rec *recording) lookup(desc, root, id string) []answer {
	if id != "" && rec.id != "" {
		desc = strings.ReplaceAll(desc, id, rec.id)
	}
	desc = strings.ReplaceAll(desc, root, rec.root)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.runs[desc]
}

// recorder passes every call on to the real runner and records the answer.
type recorder struct {
	remote.Runner
	rec *recording
}

func (r *recorder) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	res, err := r.Runner.Run(ctx, cmd)
	r.rec.add(descOf(cmd), res, err)
	return res, err
}

func (r *recorder) RunBatch(ctx context.Context, cmds []remote.Command) ([]remote.Result, []error) {
	return remote.RunInTurn(ctx, r, cmds)
}

func (r *recorder) ReadFile(ctx context.Context, path string) ([]byte, error) {
	data, err := r.Runner.ReadFile(ctx, path)
	r.rec.add("read file "+path, remote.Result{Stdout: data}, err)
	return data, err
}

func descOf(cmd remote.Command) string {
	if cmd.Desc != "" {
		return cmd.Desc
	}
	line, _, _ := strings.Cut(strings.TrimSpace(cmd.Script), "\n")
	return line
}

// replayRunner answers as the recorded host did, after delay for each
// round trip, running nothing: the n-th call of a description gets the
// n-th answer recorded for it (the last once they run out).
type replayRunner struct {
	rec        *recording
	name, root string
	id         func() string // the release being deployed, "" before the plan
	delay      time.Duration

	mu    sync.Mutex
	seen  map[string]int
	stats remote.Stats
}

// errNotRecorded is a call the recorded deploy never made.
var errNotRecorded = errors.New("not in the recording")

func (r *replayRunner) Target() string { return r.name }

func (r *replayRunner) wait(ctx context.Context) error {
	r.mu.Lock()
	r.stats.RoundTrips++
	r.mu.Unlock()
	t := time.NewTimer(r.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *replayRunner) answer(desc string) (remote.Result, error) {
	id := r.id()
	answers := r.rec.lookup(desc, r.root, id)
	if len(answers) == 0 && strings.HasPrefix(desc, "renew deploy lock") {
		// The recorded deploy may have ended before its first heartbeat.
		return remote.Result{}, nil
	}
	if len(answers) == 0 {
		return remote.Result{}, fmt.Errorf("%s on %s: %w", desc, r.name, errNotRecorded)
	}
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	n := r.seen[desc]
	r.seen[desc]++
	r.mu.Unlock()
	a := answers[min(n, len(answers)-1)]
	res := a.res
	res.Stdout = r.localize(res.Stdout, id)
	res.Stderr = r.localize(res.Stderr, id)
	return res, a.err
}

// localize puts this host's root and the release id in place of the
// recorded host's.
func (r *replayRunner) localize(b []byte, id string) []byte {
	if len(b) == 0 {
		return b
	}
	b = bytes.ReplaceAll(b, []byte(r.rec.root), []byte(r.root))
	if id != "" && r.rec.id != "" {
		b = bytes.ReplaceAll(b, []byte(r.rec.id), []byte(id))
	}
	return b
}

func (r *replayRunner) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	if cmd.Stdin != nil {
		io.Copy(io.Discard, cmd.Stdin)
	}
	if err := r.wait(ctx); err != nil {
		return remote.Result{}, err
	}
	return r.answer(descOf(cmd))
}

// RunBatch is one round trip for the whole batch, answered command by
// command as RunBatch's contract says: the first failure stops it.
func (r *replayRunner) RunBatch(ctx context.Context, cmds []remote.Command) ([]remote.Result, []error) {
	results, errs := make([]remote.Result, len(cmds)), make([]error, len(cmds))
	for _, c := range cmds {
		if c.Stdin != nil {
			io.Copy(io.Discard, c.Stdin)
		}
	}
	if err := r.wait(ctx); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return results, errs
	}
	failed := false
	for i, c := range cmds {
		if failed {
			errs[i] = remote.ErrSkipped
			continue
		}
		results[i], errs[i] = r.answer(descOf(c))
		failed = errs[i] != nil
	}
	return results, errs
}

func (r *replayRunner) Upload(ctx context.Context, src io.Reader, path string, progress func(n int)) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && progress != nil {
			progress(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return r.wait(ctx)
}

func (r *replayRunner) ReadFile(ctx context.Context, path string) ([]byte, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	res, err := r.answer("read file " + path)
	return res.Stdout, err
}

func (r *replayRunner) Stats() remote.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *replayRunner) Close() error { return nil }
