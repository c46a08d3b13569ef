package ui

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLoggerTimestampsAndRedacts(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, false)
	log.now = func() time.Time { return time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC) }
	log.AddSecret("hunter22")
	host := log.With("web1")
	log.AddSecret("s3cr3t-token") // added after With: still masked for host
	host.Infof("password is hunter22 and token s3cr3t-token\nsecond line")
	log.Debugf("hidden unless verbose")
	got := out.String()
	want := "[15:04:05] web1: password is *** and token ***\n[15:04:05] web1: second line\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLineWriterSplitsStream(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, true)
	w := log.Writer("build | ", false)
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\nthree"))
	w.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], "build | two") || !strings.HasSuffix(lines[2], "build | three") {
		t.Fatalf("unexpected lines: %q", lines)
	}
}

func TestTableAligns(t *testing.T) {
	var out bytes.Buffer
	Table(&out, []string{"stage", "result"}, [][]string{{"detect", "ok"}, {"ship", "failed"}})
	want := "stage   result\n-----   ------\ndetect  ok\nship    failed\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestProgressLogsQuartersWhenNotATerminal(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, false)
	p := log.NewProgress(context.Background(), "ship web1", 1000)
	for i := 0; i < 10; i++ {
		p.Add(100)
	}
	p.Finish()
	got := out.String()
	for _, want := range []string{"ship web1: 25% of 1000 B", "ship web1: 50%", "ship web1: 75%", "ship web1: 1000 B in"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress output lacks %q:\n%s", want, got)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{12: "12 B", 2048: "2 kB", 5 << 20: "5.0 MB", 3 << 30: "3.0 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// onTerminal is a Logger that draws progress bars, as on a terminal of the
// given width, into a buffer.
func onTerminal(width int) (*Logger, *syncBuffer) {
	out := &syncBuffer{}
	log := New(out, false)
	log.tty, log.width = true, func() int { return width }
	return log, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressOnATerminal(t *testing.T) {
	log, out := onTerminal(200)
	p := log.With("web1").NewProgress(context.Background(), "upload", 1000)
	p.Add(500)
	log.Infof("hello")
	got := out.String()
	// The log line clears the bar's line, then the bar is drawn again.
	_, after, ok := strings.Cut(got, clearLine+"[")
	if !ok {
		t.Fatalf("the log line does not clear the bar's line first: %q", got)
	}
	line, bar, _ := strings.Cut(after, "\n")
	if !strings.HasSuffix(line, "] hello") {
		t.Errorf("log line %q", line)
	}
	bar = strings.TrimPrefix(bar, clearLine)
	for _, want := range []string{"web1: upload", "50%", "500 B/1.0 kB", "|"} {
		if !strings.Contains(bar, want) {
			t.Errorf("bar %q lacks %q", bar, want)
		}
	}

	// Finish clears it for good: what follows is log lines alone.
	mark := len(out.String())
	p.Finish()
	p.Add(100)
	log.Infof("after")
	got = out.String()[mark:]
	if !strings.HasPrefix(got, clearLine+"[") || strings.Count(got, clearLine) != 1 {
		t.Errorf("after Finish: %q, want the line cleared once, then log lines", got)
	}
	if !strings.Contains(got, "web1: upload: 500 B in ") || !strings.HasSuffix(got, "] after\n") {
		t.Errorf("after Finish: %q", got)
	}
}

func TestProgressOfUnknownSizeOnATerminal(t *testing.T) {
	log, out := onTerminal(200)
	p := log.NewProgress(context.Background(), "stream", -1)
	p.Add(300 << 10)
	log.Infof("x")
	bar := out.String()[strings.LastIndex(out.String(), "\n")+1:]
	for _, want := range []string{"stream", "307 kB", "/s"} {
		if !strings.Contains(bar, want) {
			t.Errorf("bar %q lacks %q", bar, want)
		}
	}
	if strings.Contains(bar, "%") {
		t.Errorf("bar %q shows a percentage of an unknown total", bar)
	}
	p.Finish()
}

func TestProgressEndsWithItsContext(t *testing.T) {
	log, out := onTerminal(200)
	ctx, cancel := context.WithCancel(context.Background())
	p := log.NewProgress(ctx, "stream", -1)
	p.Add(100)
	log.Infof("x")
	cancel()
	for deadline := time.Now().Add(5 * time.Second); !strings.HasSuffix(out.String(), clearLine); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bar was not cleared: %q", out.String())
		}
	}
	mark := len(out.String())
	p.Add(100)
	log.Infof("later")
	time.Sleep(150 * time.Millisecond) // past a redraw interval
	p.Add(100)
	if got := out.String()[mark:]; !strings.HasPrefix(got, "[") || !strings.HasSuffix(got, "] later\n") || strings.Contains(got, "stream") {
		t.Errorf("after the cancel: %q, want the log line alone", got)
	}
	p.Stop() // no-op now
}

func TestProgressBarsShareOneLine(t *testing.T) {
	log, out := onTerminal(60)
	a := log.With("web1").NewProgress(context.Background(), "upload", 1000)
	b := log.With("web2").NewProgress(context.Background(), "upload", 1000)
	a.Add(100)
	b.Add(900)
	log.Infof("x")
	line := out.String()[strings.LastIndex(out.String(), "\n")+1:]
	line = strings.TrimPrefix(line, clearLine)
	if !strings.Contains(line, "web1: upload") {
		t.Errorf("line %q lacks the first bar", line)
	}
	if n := utf8.RuneCountInString(line); n > 59 {
		t.Errorf("line %q is %d columns wide on a terminal of 60", line, n)
	}
	// Stopping one leaves the other drawn.
	a.Stop()
	line = out.String()[strings.LastIndex(out.String(), clearLine)+len(clearLine):]
	if strings.Contains(line, "web1") || !strings.Contains(line, "web2: upload") {
		t.Errorf("after web1 stopped the line is %q", line)
	}
	b.Stop()
	if !strings.HasSuffix(out.String(), clearLine) {
		t.Errorf("not cleared after both stopped: %q", out.String())
	}
}

func TestHeld(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, false)
	log.AddSecret("hunter22")
	held := log.Hold()
	held.Infof("ahead: password hunter22")
	if out.Len() != 0 {
		t.Fatalf("a held line was written: %q", out.String())
	}
	log.Infof("meanwhile")
	held.Release()
	held.Infof("after")
	got := out.String()
	want := []string{"meanwhile", "ahead: password ***", "after"}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("log %q: want %q in this order", got, want)
		}
		last = i
	}
	if strings.Contains(got, "hunter22") {
		t.Errorf("secret in the log: %q", got)
	}
	dropped := log.Hold()
	dropped.Warnf("never shown")
	if strings.Contains(out.String(), "never shown") {
		t.Errorf("an unreleased line was written")
	}
}
