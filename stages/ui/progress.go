package ui

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
)

// Progress follows a transfer. On a terminal it draws a bar on the last
// line: bytes sent of the total, percentage, rate and time left, or, when
// the total is unknown, bytes sent and rate. Elsewhere (CI logs, cron mail)
// it logs a plain line at every quarter of a known total, so logs stay
// readable.
//
// progressbar renders the bar but does not write it: it would clear only
// its own line with spaces, and, for an unknown total, redraw from a
// goroutine of its own that only its Finish stops. Log lines from other
// goroutines and the bars of several hosts share one terminal line, so the
// Logger's sink draws it, under the lock its log lines take.
type Progress struct {
	log   *Logger
	desc  string
	total int64 // -1: unknown
	start time.Time
	stop  func() bool // stops the context's watch

	// Guarded by log.mu.
	done    int64
	next    int64                    // next byte count that earns a plain line
	bar     *progressbar.ProgressBar // on a terminal
	pending int64                    // bytes sent that bar has not been told of
	ended   bool
}

// redrawEvery bounds how often the bars are drawn between log lines: an
// upload reports every few kilobytes, a person reads a few times a second.
const redrawEvery = 100 * time.Millisecond

// NewProgress starts following a transfer of total bytes (-1: unknown),
// described by desc. The bar ends with Finish, Stop or when ctx is done,
// whichever comes first.
func (l *Logger) NewProgress(ctx context.Context, desc string, total int64) *Progress {
	if total <= 0 {
		total = -1 // progressbar's spinner; an empty transfer has no percentage
	}
	p := &Progress{log: l, desc: desc, total: total, start: l.now(), next: total / 4}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tty {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(io.Discard), // the sink draws String()
			progressbar.OptionSetDescription(l.prefix+desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(), // with ShowBytes: bytes sent, of the total when known
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(total > 0),
			progressbar.OptionSetWidth(20),
			progressbar.OptionSpinnerType(14),
			// No goroutine redrawing the spinner: it would outlive a
			// transfer that ended without Finish.
			progressbar.OptionSetSpinnerChangeInterval(0),
			progressbar.OptionSetRenderBlankState(true),
		)
		l.bars = append(l.bars, p)
		l.drawBars(l.now())
	}
	p.stop = context.AfterFunc(ctx, p.Stop)
	return p
}

// Add records n more bytes sent. It is safe for concurrent use.
func (p *Progress) Add(n int) {
	l := p.log
	l.mu.Lock()
	defer l.mu.Unlock()
	p.done += int64(n)
	if p.ended {
		return
	}
	if p.bar != nil {
		p.pending += int64(n)
		if now := l.now(); now.Sub(l.drawn) >= redrawEvery {
			l.drawBars(now)
		}
		return
	}
	for p.total > 0 && p.done >= p.next && p.next <= p.total*3/4 {
		l.lineLocked("", fmt.Sprintf("%s: %d%% of %s", p.desc, p.next*100/p.total, Bytes(p.total)))
		p.next += p.total / 4
	}
}

// Finish ends the bar and logs the total and the rate.
func (p *Progress) Finish() {
	l := p.log
	l.mu.Lock()
	defer l.mu.Unlock()
	p.endLocked()
	elapsed := l.now().Sub(p.start)
	rate := float64(p.done) / elapsed.Seconds()
	l.lineLocked("", fmt.Sprintf("%s: %s in %s (%s/s)", p.desc, Bytes(p.done), Round(elapsed), Bytes(int64(rate))))
}

// Stop ends the bar without a line, for a transfer that failed: defer it
// where Finish is not reached on every path. Later calls do nothing.
func (p *Progress) Stop() {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	p.endLocked()
}

// endLocked takes the bar off the terminal for good.
func (p *Progress) endLocked() {
	if p.ended {
		return
	}
	p.ended = true
	p.stop()
	if p.bar == nil {
		return
	}
	l := p.log
	l.bars = slices.DeleteFunc(l.bars, func(b *Progress) bool { return b == p })
	l.clearBars()
	l.drawBars(l.now())
}

// frame is the bar as progressbar renders it now.
func (p *Progress) frame() string {
	if p.pending != 0 {
		p.bar.Add64(p.pending)
		p.pending = 0
	}
	return strings.TrimSpace(p.bar.String()) // it starts with \r, ends with spaces
}

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// clearBars erases the bars' line, with mu held.
func (s *sink) clearBars() {
	if s.shown {
		io.WriteString(s.out, clearLine)
		s.shown = false
	}
}

// drawBars draws the running bars on the last line, with mu held.
func (s *sink) drawBars(now time.Time) {
	if line := s.barLine(); line != "" {
		io.WriteString(s.out, line)
		s.shown, s.drawn = true, now
	}
}

// barLine is what draws the running bars over the last line, "" when none
// runs, cut to the terminal's width: a line that wrapped could not be
// cleared.
func (s *sink) barLine() string {
	if len(s.bars) == 0 {
		return ""
	}
	// One column short: a line filling the last column wraps on some
	// terminals.
	width := s.width() - 1
	// Only the bars that fit are rendered: a fleet's hundred uploads at
	// once would otherwise cost a hundred renders per log line, each line
	// under the lock every host's logging waits for.
	var frames []string
	n := 0
	for _, p := range s.bars {
		if n > width {
			break
		}
		f := p.frame()
		frames = append(frames, f)
		n += utf8.RuneCountInString(f) + 2
	}
	return clearLine + fit(redact(strings.Join(frames, "  "), s.secrets), width)
}

// fit cuts s to at most n runes; the bars' runes are one column wide.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return string([]rune(s)[:n])
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
