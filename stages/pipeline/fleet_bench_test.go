package pipeline

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// BenchmarkFleetDeploy deploys a one-page change to 10, 100 and 1,000
// simulated hosts: runtest's fakes, each call delayed 50 ms as a round
// trip on a real link would be, then answered by the real scripts over
// this machine's shell. Besides the time per deploy it reports the
// client's CPU (user+sys) per deploy, its peak heap, and the peaks of
// goroutines and open file descriptors, which are where a fleet this big
// would stop scaling. Compare hosts=1000 with hosts=10 (the target: at
// most 15 times the time, under 500 MB). Run it with -benchtime=1x; the
// hosts=1000 case is skipped unless STAGECOACH_BENCH_1000=1, as its
// first deploy alone runs some ten thousand shells.
func BenchmarkFleetDeploy(b *testing.B) {
	for _, tc := range []struct{ hosts, parallel int }{{10, 10}, {100, 100}, {1000, 100}} {
		b.Run(fmt.Sprintf("hosts=%d/parallel=%d", tc.hosts, tc.parallel), func(b *testing.B) {
			if tc.hosts > 100 && os.Getenv("STAGECOACH_BENCH_1000") != "1" {
				b.Skip("set STAGECOACH_BENCH_1000=1 to run 1,000 simulated hosts")
			}
			e := runtest.New(b, runtest.Options{Hosts: tc.hosts, Environment: fmt.Sprintf("    parallel: %d\n", tc.parallel)})
			if err := New(e.Open(b, run.Options{})).Deploy(context.Background()); err != nil {
				b.Fatalf("first deploy: %v", err)
			}
			for i := range e.Names {
				e.Fake(i).On("").Delay(50 * time.Millisecond).Pass()
			}
			var cpu time.Duration
			peak := &peaks{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e.Write(b, "site/index.html", fmt.Sprintf("<h1>v%d</h1>\n", i+2))
				e.Commit(b, "change")
				before := cpuTime()
				stop := peak.watch()
				b.StartTimer()
				if err := New(e.Open(b, run.Options{})).Deploy(context.Background()); err != nil {
					b.Fatalf("deploy: %v", err)
				}
				b.StopTimer()
				stop()
				cpu += cpuTime() - before
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(peak.heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(peak.goroutines), "peak-goroutines")
			b.ReportMetric(float64(peak.fds), "peak-fds")
		})
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peaks samples the heap, goroutines and open descriptors while watched.
type peaks struct {
	mu              sync.Mutex
	heap            uint64
	goroutines, fds int
}

func (p *peaks) watch() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fds := 0
			if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
				fds = len(ents)
			}
			p.mu.Lock()
			p.heap = max(p.heap, ms.HeapInuse)
			p.goroutines = max(p.goroutines, runtime.NumGoroutine())
			p.fds = max(p.fds, fds)
			p.mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
