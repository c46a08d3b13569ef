package ui

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// ttyHelperEnv makes the test binary run ttyHelper instead of the tests:
// TestProgressInATerminal starts it so under tmux, on a real terminal.
const ttyHelperEnv = "STAGECOACH_UI_TTY_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(ttyHelperEnv); dir != "" {
		ttyHelper(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// ttyHelper logs lines around progress bars on stderr, stopping at each
// point the test looks at the screen until the test creates the file
// named after that point in dir.
func ttyHelper(dir string) {
	wait := func(point string) {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, point)); err == nil {
				return
			}
		}
	}
	log := New(os.Stderr, false)
	web := log.With("web1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A transfer of known size, with log lines while it runs.
	p := web.NewProgress(ctx, "upload", 1<<20)
	p.Add(512 << 10)
	log.Infof("log line 1")
	wait("half")
	for i := 2; i <= 4; i++ {
		p.Add(128 << 10)
		time.Sleep(40 * time.Millisecond)
		log.Infof("log line %d", i)
	}
	p.Add(128 << 10)
	p.Finish()
	log.Infof("log line 5")

	// One of unknown size, ended by the context.
	s := web.NewProgress(ctx, "stream", -1)
	s.Add(300 << 10)
	time.Sleep(20 * time.Millisecond)
	s.Add(100 << 10)
	log.Infof("log line 6")
	wait("stream")
	cancel()
	time.Sleep(250 * time.Millisecond) // more than a redraw interval: nothing may come back
	s.Add(100 << 10)
	log.Infof("log line 7")
	Table(os.Stdout, []string{"STAGE", "RESULT"}, [][]string{{"ship", "ok"}})
	fmt.Println("HELPER DONE")
}

// TestProgressInATerminal runs ttyHelper in a tmux pane and reads the
// screen: the bar shows bytes, total and percentage (bytes and rate when
// the total is unknown), no log line is glued to it, and nothing of it is
// left at the end.
func TestProgressInATerminal(t *testing.T) {
	tmux := testenv.RequireTool(t, "tmux", "apt-get install -y tmux")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The sleep keeps the pane open after the helper ends, for capture.
	cmd := fmt.Sprintf("env %s=%s %s; sleep 60", ttyHelperEnv, shellQuote(dir), shellQuote(os.Args[0]))
	run("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "30", "-s", "ui", cmd)
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })

	screen := func() []string {
		var rows []string
		for _, r := range strings.Split(run("capture-pane", "-p", "-t", "ui"), "\n") {
			if r = strings.TrimRight(r, " "); r != "" {
				rows = append(rows, r)
			}
		}
		return rows
	}
	// until waits for the screen to show a row for which ok holds.
	until := func(what string, ok func(row string) bool) []string {
		t.Helper()
		var rows []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if rows = screen(); slices.ContainsFunc(rows, ok) {
				return rows
			}
		}
		t.Fatalf("no %s on the screen:\n%s", what, strings.Join(rows, "\n"))
		return nil
	}
	logLine := regexp.MustCompile(`^\[\d\d:\d\d:\d\d\] log line \d$`)
	// noGlue fails on a row that holds a log line and something else.
	noGlue := func(rows []string) {
		t.Helper()
		for _, r := range rows {
			if strings.Contains(r, "log line") && !logLine.MatchString(r) {
				t.Errorf("log line glued to something else: %q", r)
			}
		}
	}

	// The helper waits after log line 1: the bar is drawn under it.
	rows := until("log line 1", func(r string) bool { return strings.HasSuffix(r, "log line 1") })
	bar := rows[len(rows)-1]
	for _, want := range []string{"web1: upload", "50%", "/1.0 MB", "|"} {
		if !strings.Contains(bar, want) {
			t.Errorf("bar %q lacks %q", bar, want)
		}
	}
	if len(rows) < 2 || !logLine.MatchString(rows[len(rows)-2]) {
		t.Errorf("no log line 1 alone above the bar:\n%s", strings.Join(rows, "\n"))
	}
	noGlue(rows)
	os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)

	rows = until("log line 6", func(r string) bool { return strings.HasSuffix(r, "log line 6") })
	bar = rows[len(rows)-1]
	if !strings.Contains(bar, "web1: stream") {
		t.Errorf("last row %q, want the bar of unknown size", bar)
	}
	for _, want := range []string{"kB", "/s"} {
		if !strings.Contains(bar, want) {
			t.Errorf("bar %q lacks %q (bytes sent and rate)", bar, want)
		}
	}
	if strings.Contains(bar, "%") {
		t.Errorf("bar %q shows a percentage of an unknown total", bar)
	}
	noGlue(rows)
	os.WriteFile(filepath.Join(dir, "stream"), nil, 0o644)

	rows = until("end", func(r string) bool { return r == "HELPER DONE" })
	noGlue(rows)
	// Every row left is a log line, the table or the end: no bar.
	rest := regexp.MustCompile(`^(\[\d\d:\d\d:\d\d\] web1: upload: 1\.0 MB in .*/s\)|STAGE +RESULT|-+ +-+|ship +ok|HELPER DONE)$`)
	for _, r := range rows {
		if !logLine.MatchString(r) && !rest.MatchString(r) {
			t.Errorf("left on the screen: %q", r)
		}
	}
	for i := 1; i <= 7; i++ {
		if !strings.Contains(strings.Join(rows, "\n"), fmt.Sprintf("log line %d", i)) {
			t.Errorf("log line %d missing from the screen:\n%s", i, strings.Join(rows, "\n"))
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
