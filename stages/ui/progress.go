package ui

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress follows a transfer of a known size. On a terminal it draws a bar
// with bytes, rate and ETA; elsewhere (CI logs, cron mail) it logs a plain
// line at every quarter, so logs stay readable.
type Progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	log   *Logger
	desc  string
	total int64
	done  int64
	next  int64 // next byte count that earns a plain line
	start time.Time
}

// NewProgress starts following a transfer of total bytes, described by desc.
func (l *Logger) NewProgress(desc string, total int64) *Progress {
	p := &Progress{log: l, desc: desc, total: total, start: time.Now(), next: total / 4}
	if f, ok := l.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	}
	return p
}

// Add records n more bytes sent. It is safe for concurrent use.
func (p *Progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	for p.total > 0 && p.done >= p.next && p.next <= p.total*3/4 {
		p.log.Infof("%s: %d%% of %s", p.desc, p.next*100/p.total, Bytes(p.total))
		p.next += p.total / 4
	}
}

// Finish ends the bar and logs the total and the rate.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
	elapsed := time.Since(p.start)
	rate := float64(p.done) / elapsed.Seconds()
	p.log.Infof("%s: %s in %s (%s/s)", p.desc, Bytes(p.done), Round(elapsed), Bytes(int64(rate)))
}

// Bytes formats a byte count for people: 1.2 MB, 340 kB, 12 B.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
