package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// startSSHD starts a test sshd, or skips the test under -short, which must
// start no server.
func startSSHD(t testing.TB, opts ...testenv.Option) *testenv.Host {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sshd: skipped with -short")
	}
	return testenv.StartSSHD(t, opts...)
}

// transports gives each test the same runner semantics on both transports.
func transports(t *testing.T) map[string]func(t *testing.T) remote.Runner {
	return map[string]func(t *testing.T) remote.Runner{
		"local": func(t *testing.T) remote.Runner { return remote.NewLocal() },
		"ssh": func(t *testing.T) remote.Runner {
			return startSSHD(t).Dial(t)
		},
	}
}

func forEachTransport(t *testing.T, test func(t *testing.T, r remote.Runner)) {
	for name, open := range transports(t) {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

func TestRunOutput(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		ctx := context.Background()
		res, err := r.Run(ctx, remote.Script("greet", `echo out; echo err >&2; printf '%s' "$0"`))
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "out\n/bin/sh" {
			t.Errorf("stdout %q", res.Stdout)
		}
		if string(res.Stderr) != "err\n" {
			t.Errorf("stderr %q", res.Stderr)
		}
		if res.ExitCode != 0 {
			t.Errorf("exit code %d", res.ExitCode)
		}

		// Arguments built with Cmd arrive unchanged.
		args := []string{"a b", "it's", "$HOME", "*", "line\nbreak"}
		res, err = r.Run(ctx, remote.Cmd("print args", append([]string{"printf", `%s\0`}, args...)...))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSuffix(string(res.Stdout), "\x00"), "\x00"); strings.Join(got, "|") != strings.Join(args, "|") {
			t.Errorf("args %q, want %q", got, args)
		}
	})
}

func TestRunExitError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		res, err := r.Run(context.Background(), remote.Script("fail on purpose", "echo partial; echo boom >&2; exit 7"))
		var exit *remote.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("error %v (%T), want *remote.ExitError", err, err)
		}
		if exit.Code != 7 || res.ExitCode != 7 {
			t.Errorf("code %d / result %d, want 7", exit.Code, res.ExitCode)
		}
		if !strings.Contains(exit.Stderr, "boom") || !strings.Contains(err.Error(), "fail on purpose") || !strings.Contains(err.Error(), "boom") {
			t.Errorf("error %q lacks description or stderr", err)
		}
		if string(res.Stdout) != "partial\n" {
			t.Errorf("stdout %q", res.Stdout)
		}
		if exit.Target != r.Target() {
			t.Errorf("target %q, want %q", exit.Target, r.Target())
		}
	})
}

func TestRunStdinAndTee(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		var both bytes.Buffer
		cmd := remote.Script("count lines", "wc -l; echo done >&2")
		cmd.Stdin = strings.NewReader("a\nb\nc\n")
		cmd.Stdout, cmd.Stderr = &both, &both
		res, err := r.Run(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(res.Stdout)) != "3" {
			t.Errorf("stdout %q", res.Stdout)
		}
		if !strings.Contains(both.String(), "3") || !strings.Contains(both.String(), "done") {
			t.Errorf("tee got %q", both.String())
		}
		// A command that ignores its input still finishes.
		cmd = remote.Script("ignore input", "true")
		cmd.Stdin = bytes.NewReader(make([]byte, 1<<20))
		if _, err := r.Run(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
		// No stdin means empty input, not a hang.
		res, err = r.Run(context.Background(), remote.Script("read nothing", "cat | wc -c"))
		if err != nil || strings.TrimSpace(string(res.Stdout)) != "0" {
			t.Fatalf("cat of no input: %q, %v", res.Stdout, err)
		}
	})
}

func TestRunCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := r.Run(ctx, remote.Script("sleep", "sleep 30 & echo $! > "+remote.Quote(pidFile)+"; wait"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want it to wrap context.DeadlineExceeded", err)
		}
		// A guard against hanging, not a speed check.
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("Run returned after %s", d)
		}
		// The sleep itself must be gone too.
		pid, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		// Alive and not a zombie (a container's init may not reap orphans).
		check := remote.Script("is sleep alive", fmt.Sprintf(`s=$(cut -d' ' -f3 /proc/%s/stat 2>/dev/null) && [ "$s" != Z ]`, strings.TrimSpace(string(pid))))
		for i := 0; ; i++ {
			_, err := r.Run(context.Background(), check)
			if err != nil {
				break
			}
			if i == 100 {
				t.Fatalf("sleep %s still running after cancel", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestUploadAndRead(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		ctx := context.Background()
		dir := t.TempDir()
		dest := filepath.Join(dir, "archive.tar")
		data := bytes.Repeat([]byte("stagecoach\x00\xff"), 300_000) // ~3.6 MB
		var total int
		if err := r.Upload(ctx, bytes.NewReader(data), dest, func(n int) { total += n }); err != nil {
			t.Fatal(err)
		}
		if total != len(data) {
			t.Errorf("progress total %d, want %d", total, len(data))
		}
		got, err := r.ReadFile(ctx, dest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, want %d identical", len(got), len(data))
		}
		// Overwrite in place, empty file.
		if err := r.Upload(ctx, strings.NewReader(""), dest, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadFile(ctx, dest); err != nil || len(got) != 0 {
			t.Fatalf("after empty upload: %d bytes, %v", len(got), err)
		}
		// No partial files left beside it.
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries, want only the upload", len(entries))
		}
	})
}

func TestUploadMissingDirectory(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		dest := filepath.Join(t.TempDir(), "nope", "file")
		err := r.Upload(context.Background(), strings.NewReader("x"), dest, nil)
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), dest) {
			t.Fatalf("error %v, want one naming %s and the missing directory", err, dest)
		}
	})
}

func TestUploadCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		dest := filepath.Join(t.TempDir(), "file")
		ctx, cancel := context.WithCancel(context.Background())
		src := &slowReader{after: 64 << 10, cancel: cancel}
		err := r.Upload(ctx, src, dest, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want it to wrap context.Canceled", err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Fatalf("final file exists after a cancelled upload (stat: %v)", err)
		}
	})
}

func TestReadFileMissing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		p := filepath.Join(t.TempDir(), "absent")
		if _, err := r.ReadFile(context.Background(), p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("error %v, want one naming %s", err, p)
		}
	})
}

// TestStatsCountRoundTrips: every run is a round trip; over SSH the runs
// share one persistent shell, whose session is a round trip too.
func TestStatsCountRoundTrips(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		before := r.Stats()
		for i := 0; i < 3; i++ {
			if _, err := r.Run(context.Background(), remote.Cmd("echo", "echo", strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		st := r.Stats()
		sessions, trips := st.Sessions-before.Sessions, st.RoundTrips-before.RoundTrips
		if _, ssh := r.(*remote.SSH); ssh {
			if sessions != 1 || trips != 4 {
				t.Errorf("3 runs counted as %d sessions, %d round trips; want 1 and 4", sessions, trips)
			}
		} else if sessions != 3 || trips != 3 {
			t.Errorf("3 runs counted as %d sessions, %d round trips; want 3 and 3", sessions, trips)
		}
	})
}

// slowReader yields zeros; after some bytes it calls cancel (if set) and
// then blocks briefly on every read so the cancellation lands mid-stream.
type slowReader struct {
	n, after int
	cancel   func()
	onAfter  func()
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.n >= s.after {
		if s.cancel != nil {
			s.cancel()
			s.cancel = nil
		}
		if s.onAfter != nil {
			s.onAfter()
			s.onAfter = nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(p) > 8<<10 {
		p = p[:8<<10]
	}
	clear(p)
	s.n += len(p)
	return len(p), nil
}

// failingReader fails after some data, as a broken local archive would.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= 256<<10 {
		return 0, errors.New("disk on fire")
	}
	if len(p) > 8<<10 {
		p = p[:8<<10]
	}
	f.n += len(p)
	return len(p), nil
}

func TestUploadSourceError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		dest := filepath.Join(t.TempDir(), "file")
		err := r.Upload(context.Background(), &failingReader{}, dest, nil)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("error %v, want the source's error", err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Fatalf("final file exists after a failed upload (stat: %v)", err)
		}
	})
}

// TestNotConnectionLost: a command failing, killed or cancelled, or a local
// source failing is not a lost connection, and the runner goes on working.
func TestNotConnectionLost(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r remote.Runner) {
		dir := t.TempDir()
		run := func(ctx context.Context, script string) error {
			_, err := r.Run(ctx, remote.Script("step", script))
			return err
		}
		for _, tc := range []struct {
			name string
			op   func(ctx context.Context) error
		}{
			{"exit status", func(ctx context.Context) error { return run(ctx, "echo boom >&2; exit 7") }},
			{"killed by signal", func(ctx context.Context) error { return run(ctx, "kill -KILL $$") }},
			{"cancelled", func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				return run(ctx, "sleep 30")
			}},
			{"read missing file", func(ctx context.Context) error {
				_, err := r.ReadFile(ctx, filepath.Join(dir, "absent"))
				return err
			}},
			{"upload into missing directory", func(ctx context.Context) error {
				return r.Upload(ctx, strings.NewReader("x"), filepath.Join(dir, "nope", "f"), nil)
			}},
			{"upload source fails", func(ctx context.Context) error {
				return r.Upload(ctx, &failingReader{}, filepath.Join(dir, "f"), nil)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.op(context.Background())
				if err == nil || remote.IsConnectionLost(err) || errors.Is(err, remote.ErrConnectionLost) {
					t.Fatalf("error %v, want a failure that is not a lost connection", err)
				}
			})
		}
		if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
			t.Fatalf("runner broken after the failures: %v", err)
		}
	})
}
