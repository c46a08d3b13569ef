package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
	p := log.NewProgress("ship web1", 1000)
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
