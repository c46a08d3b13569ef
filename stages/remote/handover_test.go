package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// shellPID returns the pid of the persistent shell a plain Run used.
func shellPID(t *testing.T, r remote.Runner) string {
	t.Helper()
	res, err := r.Run(context.Background(), remote.Script("shell pid", "echo $PPID"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// TestHandoverStreamsOnTheIdleShell: a command that streams its output,
// and an upload, run in place of the idle persistent shell (the same
// process), so they start neither a session nor a login shell; their
// output, exit status and data arrive whole, and the commands after them
// find a shell started meanwhile.
func TestHandoverStreamsOnTheIdleShell(t *testing.T) {
	h := startWrappedSSHD(t, wrapper{delay: "0.2"})
	r := h.Dial(t)
	ctx := context.Background()

	first := shellPID(t, r)
	var out, errOut bytes.Buffer
	cmd := remote.Script("stream", "echo $$; echo to stderr >&2; exit 3")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	res, err := r.Run(ctx, cmd)
	var exit *remote.ExitError
	if !errors.As(err, &exit) || exit.Code != 3 || strings.TrimSpace(exit.Stderr) != "to stderr" {
		t.Fatalf("error %v, want exit 3 with its stderr", err)
	}
	if got := strings.TrimSpace(out.String()); got != first || string(res.Stdout) != out.String() {
		t.Errorf("the streaming command ran as pid %q (captured %q), want the idle shell's %s", got, res.Stdout, first)
	}
	if errOut.String() != "to stderr\n" {
		t.Errorf("streamed stderr %q", errOut.String())
	}

	second := shellPID(t, r)
	if second == first {
		t.Fatalf("the shell handed over still answers requests")
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	dst := filepath.Join(t.TempDir(), "upload")
	if err := r.Upload(ctx, bytes.NewReader(data), dst, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file: %d bytes, %v; want the %d sent", len(got), err, len(data))
	}
	if third := shellPID(t, r); third == second || third == first {
		t.Errorf("after the upload, a request ran on shell %s (before: %s, %s)", third, first, second)
	}
	if st, n := r.Stats(), h.sessions(t); st.Sessions != int64(n) || n != 3 {
		t.Errorf("runner counted %d sessions, the server started %d; want 3 shells", st.Sessions, n)
	}
}

// TestHandoverToADeadShell: an upload that takes an idle shell which has
// just died, before the runner could know, goes on a session of its own
// with its data untouched.
func TestHandoverToADeadShell(t *testing.T) {
	r := startSSHD(t).Dial(t)
	pid, err := strconv.Atoi(shellPID(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	data := bytes.Repeat([]byte("stagecoach\n"), 1<<16)
	dst := filepath.Join(t.TempDir(), "upload")
	if err := r.Upload(context.Background(), bytes.NewReader(data), dst, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file: %d bytes, %v; want the %d sent", len(got), err, len(data))
	}
}

// TestHandoverEndsUnbeknown: an upload's data follows its handover
// request without waiting for the answer. When the idle shell it took
// was alive to the runner but never answers (stopped, then killed while
// the data was being sent), the data it swallowed is sent again on a
// session of its own, and arrives whole, once.
func TestHandoverEndsUnbeknown(t *testing.T) {
	for _, size := range []int{64 << 10, 3 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			h := startSSHD(t)
			r := h.Dial(t)
			pid, err := strconv.Atoi(shellPID(t, r))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, size)
			rand.Read(data)
			dst := filepath.Join(t.TempDir(), "upload")
			done := make(chan error, 1)
			go func() { done <- r.Upload(context.Background(), bytes.NewReader(data), dst, nil) }()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("the upload ended (%v) while the shell it took was stopped", err)
			default:
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("uploaded file: %d bytes, %v; want the %d sent", len(got), err, len(data))
			}
		})
	}
}

// TestFeedReturnsBeforeItsAnswer: Feed returns once every byte is sent,
// before the script it feeds on the target is done (it sleeps). The wait
// it returns waits there for that end, so the script got every byte by
// then, and nothing else of the data is left on the target; fed then
// reports the script's own outcome, its failure included.
func TestFeedReturnsBeforeItsAnswer(t *testing.T) {
	r := startSSHD(t).Dial(t)
	ctx := context.Background()
	shellPID(t, r) // an idle shell to hand over, as a deploy has one
	var f remote.Feeder = r

	data := make([]byte, 3<<20)
	rand.Read(data)
	dir := t.TempDir()
	copied := filepath.Join(dir, "copy")
	start := time.Now()
	wait, fed, err := f.Feed(ctx, remote.Script("copy the data", "cat > "+remote.Quote(copied)+"; sleep 0.5"), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= 500*time.Millisecond {
		t.Errorf("Feed took %s: it waited for the script's end", took)
	}
	if _, err := r.Run(ctx, wait); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(copied); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the script got %d bytes, %v; want the %d sent", len(got), err, len(data))
	}
	if err := fed(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries where the script wrote its copy, want that copy alone", len(entries))
	}

	shellPID(t, r)
	failing := remote.Script("refuse the data", "cat >/dev/null; echo 'no room for it' >&2; exit 3")
	wait, fed, err = f.Feed(ctx, failing, strings.NewReader("x"), nil)
	if err == nil {
		if _, err = r.Run(ctx, wait); err != nil {
			t.Fatalf("the wait for a script that failed: %v", err)
		}
		err = fed()
	}
	if err == nil || !strings.Contains(err.Error(), "no room for it") || !strings.Contains(err.Error(), "refuse the data") {
		t.Fatalf("error %v, want the script's own, with what it was", err)
	}
}

// TestWarmKeepsASecondShell: a shell started ahead of an upload serves the
// commands after it, however the two race: two sessions in all.
func TestWarmKeepsASecondShell(t *testing.T) {
	for _, settle := range []time.Duration{0, time.Second} {
		t.Run(settle.String(), func(t *testing.T) {
			h := startWrappedSSHD(t, wrapper{delay: "0.2"})
			r := h.Dial(t)
			shellPID(t, r)
			r.Warm()
			time.Sleep(settle)
			dst := filepath.Join(t.TempDir(), "upload")
			if err := r.Upload(context.Background(), strings.NewReader("data"), dst, nil); err != nil {
				t.Fatal(err)
			}
			shellPID(t, r)
			if st, n := r.Stats(), h.sessions(t); st.Sessions != 2 || n != 2 {
				t.Errorf("runner counted %d sessions, the server started %d; want 2", st.Sessions, n)
			}
		})
	}
}

// TestWarmBeforeTheFirstCommand: a shell warmed before the connection ran
// anything is kept aside for after the upload: the first command, Public,
// starts its own carrying it rather than wait for it, and after the upload, which takes the
// first command's shell over, the warmed one serves: two sessions in all.
func TestWarmBeforeTheFirstCommand(t *testing.T) {
	h := startWrappedSSHD(t, wrapper{delay: "0.3"})
	r := h.Dial(t)
	r.Warm()
	pid := remote.Script("shell pid", "echo $PPID")
	pid.Public = true
	res, err := r.Run(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.TrimSpace(string(res.Stdout))
	if st := r.Stats(); st.Sessions != 2 {
		t.Fatalf("after the first command: %d sessions, want 2 (its own and the warmed one)", st.Sessions)
	}
	dst := filepath.Join(t.TempDir(), "upload")
	if err := r.Upload(context.Background(), strings.NewReader("data"), dst, nil); err != nil {
		t.Fatal(err)
	}
	if after := shellPID(t, r); after == first {
		t.Errorf("the command after the upload ran in the shell the upload took over (%s)", first)
	}
	if st, n := r.Stats(), h.sessions(t); st.Sessions != 2 || n != 2 {
		t.Errorf("runner counted %d sessions, the server started %d; want 2", st.Sessions, n)
	}
}
