package remotetest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
)

var errBoom = errors.New("boom")

// outcome names how a call ended, for compact expectations.
func outcome(err error) string {
	var exit *remote.ExitError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &exit):
		return fmt.Sprintf("exit %d", exit.Code)
	case remote.IsConnectionLost(err):
		return "lost"
	case errors.Is(err, remotetest.ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "ctx"
	case errors.Is(err, errBoom):
		return "boom"
	}
	return err.Error()
}

// do runs one operation written as "run DESC", "upload PATH" or "read PATH".
func do(ctx context.Context, r remote.Runner, op string) error {
	kind, arg, _ := strings.Cut(op, " ")
	switch kind {
	case "run":
		_, err := r.Run(ctx, remote.Script(arg, "true"))
		return err
	case "upload":
		return r.Upload(ctx, strings.NewReader("data"), arg, nil)
	case "read":
		_, err := r.ReadFile(ctx, arg)
		return err
	}
	panic("bad op " + op)
}

func TestDefaults(t *testing.T) {
	ctx := context.Background()
	f := remotetest.New("", nil)
	if f.Target() != "fake" {
		t.Errorf("Target() = %q, want fake", f.Target())
	}
	cmd := remote.Script("", "echo hi\necho more")
	cmd.Stdin = strings.NewReader("input")
	res, err := f.Run(ctx, cmd)
	if err != nil || len(res.Stdout) != 0 || res.ExitCode != 0 {
		t.Errorf("Run = %+v, %v; want empty success", res, err)
	}
	var progress int
	if err := f.Upload(ctx, bytes.NewReader(make([]byte, 100_000)), "/srv/a.tar", func(n int) { progress += n }); err != nil {
		t.Errorf("Upload: %v", err)
	}
	if progress != 100_000 {
		t.Errorf("progress reported %d bytes, want 100000", progress)
	}
	if b, err := f.ReadFile(ctx, "/srv/state.json"); err != nil || len(b) != 0 {
		t.Errorf("ReadFile = %q, %v; want empty success", b, err)
	}
	calls := f.Calls()
	want := []remotetest.Call{
		{Kind: "run", Desc: "echo hi", Script: "echo hi\necho more", Stdin: []byte("input"), Conn: 1},
		{Kind: "upload", Desc: "upload /srv/a.tar", Path: "/srv/a.tar", Stdin: make([]byte, 100_000), Conn: 1},
		{Kind: "read", Desc: "read /srv/state.json", Path: "/srv/state.json", Conn: 1},
	}
	if len(calls) != len(want) {
		t.Fatalf("%d calls recorded, want %d: %q", len(calls), len(want), f.Descs())
	}
	for i, c := range calls {
		w := want[i]
		if c.Kind != w.Kind || c.Desc != w.Desc || c.Script != w.Script || c.Path != w.Path ||
			!bytes.Equal(c.Stdin, w.Stdin) || c.Conn != w.Conn || c.Err != nil {
			t.Errorf("call %d = %+v, want %+v", i+1, c, w)
		}
	}
	if st := f.Stats(); st.Sessions != 3 || st.Connections != 1 {
		t.Errorf("Stats() = %+v, want 1 connection, 3 sessions", st)
	}
	if got := strings.Join(f.Descs(), "|"); got != "echo hi|upload /srv/a.tar|read /srv/state.json" {
		t.Errorf("Descs() = %q", got)
	}
	if f.Count("srv") != 2 || f.Count("") != 3 || f.Count("nothing") != 0 {
		t.Errorf("Count: srv %d, all %d, nothing %d", f.Count("srv"), f.Count(""), f.Count("nothing"))
	}
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rule       func(r *remotetest.Rule)
		wantOut    string
		wantErrOut string
		want       string // outcome of the run
	}{
		{"exit", func(r *remotetest.Rule) { r.Exit(3, "no space") }, "", "no space", "exit 3"},
		{"stdout", func(r *remotetest.Rule) { r.Stdout([]byte("v2\n")) }, "v2\n", "", "ok"},
		{"stdout and exit", func(r *remotetest.Rule) { r.Stdout([]byte("half")).Exit(1, "then failed") }, "half", "then failed", "exit 1"},
		{"exit 0 with stderr", func(r *remotetest.Rule) { r.Exit(0, "warning") }, "", "warning", "ok"},
		{"error", func(r *remotetest.Rule) { r.Err(errBoom) }, "", "", "boom"},
		{"lost connection", func(r *remotetest.Rule) { r.LoseConnection() }, "", "", "lost"},
		{"lost wins over err and exit", func(r *remotetest.Rule) { r.Exit(2, "").Err(errBoom).LoseConnection() }, "", "", "lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := remotetest.New("web1", nil)
			tc.rule(f.On("migrate"))
			var out, errOut bytes.Buffer
			cmd := remote.Script("migrate database", "./migrate")
			cmd.Stdout, cmd.Stderr = &out, &errOut
			res, err := f.Run(context.Background(), cmd)
			if got := outcome(err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			if string(res.Stdout) != tc.wantOut || out.String() != tc.wantOut {
				t.Errorf("stdout %q, writer got %q; want %q", res.Stdout, out.String(), tc.wantOut)
			}
			if string(res.Stderr) != tc.wantErrOut || errOut.String() != tc.wantErrOut {
				t.Errorf("stderr %q, writer got %q; want %q", res.Stderr, errOut.String(), tc.wantErrOut)
			}
			var exit *remote.ExitError
			if errors.As(err, &exit) {
				want := remote.ExitError{Target: "web1", Desc: "migrate database", Code: res.ExitCode, Stderr: tc.wantErrOut}
				if *exit != want {
					t.Errorf("exit error %+v, want %+v", *exit, want)
				}
			}
			if err != nil && tc.want != "boom" && !strings.Contains(err.Error(), "migrate database") {
				t.Errorf("error %q does not name the command", err)
			}
			if tc.want == "boom" && err != errBoom {
				t.Errorf("error %v, want errBoom as is", err)
			}
			if c := f.Calls()[0]; outcome(c.Err) != tc.want {
				t.Errorf("recorded error %v, want %s", c.Err, tc.want)
			}
		})
	}
}

func TestAnswersForUploadAndRead(t *testing.T) {
	ctx := context.Background()
	f := remotetest.New("web1", nil)
	f.On("read /srv/state.json").Stdout([]byte(`{"live":"r1"}`))
	f.On("read /srv/missing").Exit(1, "cat: /srv/missing: No such file or directory")
	f.On("upload /srv/full.tar").Exit(1, "No space left on device")
	if b, err := f.ReadFile(ctx, "/srv/state.json"); err != nil || string(b) != `{"live":"r1"}` {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	_, err := f.ReadFile(ctx, "/srv/missing")
	var exit *remote.ExitError
	if !errors.As(err, &exit) || exit.Desc != "read /srv/missing" || exit.Code != 1 {
		t.Errorf("ReadFile of a missing file: %v, want an exit error", err)
	}
	var sent int
	err = f.Upload(ctx, strings.NewReader("archive"), "/srv/full.tar", func(n int) { sent += n })
	if !errors.As(err, &exit) || !strings.Contains(err.Error(), "upload /srv/full.tar to web1") || !strings.Contains(err.Error(), "No space") {
		t.Errorf("Upload error %v, want an exit error naming the upload", err)
	}
	if sent != len("archive") {
		t.Errorf("progress %d, want %d: the data reached the host before it failed", sent, len("archive"))
	}
}

func TestMatching(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules func(f *remotetest.Fake)
		ops   []string
		want  []string
	}{
		{"every matching call by default",
			func(f *remotetest.Fake) { f.On("deploy").Exit(1, "") },
			[]string{"run deploy web", "run check", "run deploy db"},
			[]string{"exit 1", "ok", "exit 1"}},
		{"empty match matches all",
			func(f *remotetest.Fake) { f.On("").Exit(9, "") },
			[]string{"run a", "upload /a", "read /a"},
			[]string{"exit 9", "exit 9", "exit 9"}},
		{"nth",
			func(f *remotetest.Fake) { f.On("swap").Nth(2).Exit(1, "") },
			[]string{"run swap", "run swap", "run swap"},
			[]string{"ok", "exit 1", "ok"}},
		{"nth counts only matching calls",
			func(f *remotetest.Fake) { f.On("swap").Nth(2).Exit(1, "") },
			[]string{"run swap", "run health", "run health", "run swap"},
			[]string{"ok", "ok", "ok", "exit 1"}},
		{"times",
			func(f *remotetest.Fake) { f.On("lock").Times(2).Exit(75, "") },
			[]string{"run lock", "run lock", "run lock"},
			[]string{"exit 75", "exit 75", "ok"}},
		{"times 0 never fires",
			func(f *remotetest.Fake) { f.On("lock").Times(0).Exit(75, "") },
			[]string{"run lock"},
			[]string{"ok"}},
		{"first rule added wins",
			func(f *remotetest.Fake) { f.On("deploy").Exit(1, ""); f.On("deploy web").Exit(2, "") },
			[]string{"run deploy web"},
			[]string{"exit 1"}},
		{"a spent rule leaves the call to the next",
			func(f *remotetest.Fake) { f.On("x").Times(1).Exit(1, ""); f.On("x").Exit(2, "") },
			[]string{"run x", "run x", "run x"},
			[]string{"exit 1", "exit 2", "exit 2"}},
		{"rules count calls others answered",
			func(f *remotetest.Fake) { f.On("x").Times(1).Exit(1, ""); f.On("x").Nth(2).Exit(2, "") },
			[]string{"run x", "run x", "run x"},
			[]string{"exit 1", "exit 2", "ok"}},
		{"upload and read descriptions",
			func(f *remotetest.Fake) { f.On("upload /srv/a").Err(errBoom); f.On("read /srv/a").Exit(1, "") },
			[]string{"upload /srv/a", "read /srv/a", "run upload /srv/b", "upload /srv/b"},
			[]string{"boom", "exit 1", "ok", "ok"}},
		{"fail nth overall, before the rules",
			func(f *remotetest.Fake) { f.On("b").Exit(1, ""); f.FailNth(3, errBoom) },
			[]string{"run a", "upload /x", "run b", "read /b"},
			[]string{"ok", "ok", "boom", "exit 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := remotetest.New("web1", nil)
			tc.rules(f)
			var got []string
			for _, op := range tc.ops {
				got = append(got, outcome(do(context.Background(), f, op)))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("outcomes %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNthPanicsBelowOne(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Nth(0) did not panic")
		}
	}()
	remotetest.New("", nil).On("x").Nth(0)
}

func TestLostConnectionStaysLost(t *testing.T) {
	ctx := context.Background()
	f := remotetest.New("web1", nil)
	f.On("swap").LoseConnection()
	f.On("record").Exit(1, "")
	if err := do(ctx, f, "run swap"); outcome(err) != "lost" || !strings.Contains(err.Error(), "swap on web1: connection lost") {
		t.Fatalf("swap: %v, want a lost connection", err)
	}
	for _, op := range []string{"run record", "upload /srv/a", "read /srv/a"} {
		if err := do(ctx, f, op); outcome(err) != "lost" {
			t.Errorf("%s after the loss: %v, want a lost connection", op, err)
		}
	}
	if st := f.Stats(); st.Sessions != 1 {
		t.Errorf("%d sessions, want 1: calls on a lost connection reach no host", st.Sessions)
	}
	// A new connection works, and the record rule, never reached, is whole.
	again := f.Connect()
	if err := do(ctx, again, "run record"); outcome(err) != "exit 1" {
		t.Errorf("record over a new connection: %v, want the rule's exit 1", err)
	}
	if err := do(ctx, again, "run other"); err != nil {
		t.Errorf("other over a new connection: %v", err)
	}
	var conns []int
	for _, c := range f.Calls() {
		conns = append(conns, c.Conn)
	}
	if fmt.Sprint(conns) != "[1 1 1 1 2 2]" {
		t.Errorf("calls went over connections %v", conns)
	}
	if n := f.Count("record"); n != 2 {
		t.Errorf("Count(record) = %d, want 2 (the failed attempt counts)", n)
	}
	// Closing the lost connection makes it say so.
	f.Close()
	if err := do(ctx, f, "run x"); outcome(err) != "closed" {
		t.Errorf("after Close: %v, want closed", err)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	inner := remotetest.New("inner", nil)
	f := remotetest.New("web1", inner)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, op := range []string{"run a", "upload /a", "read /a"} {
		err := do(ctx, f, op)
		if outcome(err) != "closed" || remote.IsConnectionLost(err) || !strings.Contains(err.Error(), "web1") {
			t.Errorf("%s after Close: %v, want a closed error naming the host", op, err)
		}
	}
	if err := do(ctx, inner, "run a"); err != nil {
		t.Errorf("Close closed Inner: %v", err)
	}
	if len(inner.Calls()) != 1 {
		t.Errorf("calls after Close reached Inner: %q", inner.Descs())
	}
}

func TestWaiting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rule    func(r *remotetest.Rule, cancel func(), f *remotetest.Fake)
		timeout time.Duration
		want    string
		minTime time.Duration
	}{
		{"delay then answer", func(r *remotetest.Rule, _ func(), _ *remotetest.Fake) { r.Delay(50*time.Millisecond).Exit(4, "") },
			time.Minute, "exit 4", 50 * time.Millisecond},
		{"delay cut by the deadline", func(r *remotetest.Rule, _ func(), _ *remotetest.Fake) { r.Delay(time.Hour) },
			50 * time.Millisecond, "ctx", 50 * time.Millisecond},
		{"hang until the deadline", func(r *remotetest.Rule, _ func(), _ *remotetest.Fake) { r.Hang() },
			50 * time.Millisecond, "ctx", 50 * time.Millisecond},
		{"then cancels, as Ctrl-C", func(r *remotetest.Rule, cancel func(), _ *remotetest.Fake) { r.Then(cancel).Hang() },
			time.Minute, "ctx", 0},
		{"then cancels without a wait", func(r *remotetest.Rule, cancel func(), _ *remotetest.Fake) { r.Then(cancel) },
			time.Minute, "ctx", 0},
		{"hang ended by Close", func(r *remotetest.Rule, _ func(), f *remotetest.Fake) {
			r.Hang()
			time.AfterFunc(20*time.Millisecond, func() { f.Close() })
		}, time.Minute, "closed", 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := remotetest.New("web1", nil)
			// Before the deadline is set, which is then at least
			// tc.timeout after it.
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			tc.rule(f.On("step"), cancel, f)
			err := do(ctx, f, "run step")
			if got := outcome(err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			if d := time.Since(start); d < tc.minTime || d > 10*time.Second {
				t.Errorf("returned after %s, want at least %s", d, tc.minTime)
			}
			if tc.want == "ctx" && remote.IsConnectionLost(err) {
				t.Errorf("cancellation reported as a lost connection")
			}
		})
	}
}

func TestLossEndsWaitingCalls(t *testing.T) {
	f := remotetest.New("web1", nil)
	f.On("heartbeat").Hang()
	f.On("swap").Delay(20 * time.Millisecond).LoseConnection()
	hung := make(chan error, 1)
	go func() { hung <- do(context.Background(), f, "run heartbeat") }()
	if err := do(context.Background(), f, "run swap"); outcome(err) != "lost" {
		t.Fatalf("swap: %v", err)
	}
	select {
	case err := <-hung:
		if outcome(err) != "lost" {
			t.Errorf("hanging heartbeat ended with %v, want a lost connection", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hanging call did not end when the connection was lost")
	}
}

func TestDoneContextReachesNoRule(t *testing.T) {
	f := remotetest.New("web1", nil)
	f.On("a").Nth(1).Exit(1, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := do(ctx, f, "run a"); outcome(err) != "ctx" {
		t.Fatalf("with a done context: %v", err)
	}
	if err := do(context.Background(), f, "run a"); outcome(err) != "exit 1" {
		t.Errorf("first call to reach the host: %v, want the Nth(1) rule", err)
	}
	if f.Stats().Sessions != 1 {
		t.Errorf("%d sessions, want 1", f.Stats().Sessions)
	}
}

// TestStdinIsDrained: a caller writing a command's input through a pipe is
// never left blocked, whatever answers the call.
func TestStdinIsDrained(t *testing.T) {
	data := bytes.Repeat([]byte("line\n"), 100_000)
	for _, tc := range []struct {
		name  string
		setup func(f *remotetest.Fake)
	}{
		{"default", func(f *remotetest.Fake) {}},
		{"exit", func(f *remotetest.Fake) { f.On("").Exit(1, "") }},
		{"lost before", func(f *remotetest.Fake) { f.On("first").LoseConnection(); do(context.Background(), f, "run first") }},
		{"closed before", func(f *remotetest.Fake) { f.Close() }},
		{"inner ignores input", func(f *remotetest.Fake) { f.Inner = remote.NewLocal() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := remotetest.New("web1", nil)
			tc.setup(f)
			pr, pw := io.Pipe()
			wrote := make(chan error, 1)
			go func() {
				_, err := pw.Write(data)
				pw.Close()
				wrote <- err
			}()
			cmd := remote.Script("load", "true")
			cmd.Stdin = pr
			f.Run(context.Background(), cmd)
			select {
			case err := <-wrote:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the caller's writer is still blocked")
			}
			calls := f.Calls()
			if got := calls[len(calls)-1].Stdin; !bytes.Equal(got, data) {
				t.Errorf("recorded %d bytes of input, want %d", len(got), len(data))
			}
		})
	}
}

func TestUploadSourceFails(t *testing.T) {
	f := remotetest.New("web1", nil)
	err := f.Upload(context.Background(), io.MultiReader(strings.NewReader("abc"), errReader{}), "/srv/a", nil)
	if !errors.Is(err, errBoom) || remote.IsConnectionLost(err) || !strings.Contains(err.Error(), "upload /srv/a to web1") {
		t.Errorf("error %v, want the source's error, named", err)
	}
	if c := f.Calls()[0]; string(c.Stdin) != "abc" || !errors.Is(c.Err, errBoom) {
		t.Errorf("recorded %+v", c)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

// TestInnerLocal runs real scripts through the Fake on this machine:
// unanswered calls and Pass rules reach them, other rules stop them.
func TestInnerLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := remotetest.New("web1", remote.NewLocal())
	var sideEffect bool
	f.On("prepare").Then(func() { sideEffect = true }).Pass()
	f.On("break").Exit(5, "stopped by the test")
	f.On("drop").Pass().LoseConnection()

	cmd := remote.Script("prepare release", "mkdir -p "+remote.Quote(filepath.Join(dir, "releases"))+"; cat > "+remote.Quote(filepath.Join(dir, "env")))
	cmd.Stdin = strings.NewReader("A=1\n")
	if _, err := f.Run(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if !sideEffect {
		t.Error("Then did not run before passing through")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "env")); string(b) != "A=1\n" {
		t.Errorf("inner got input %q", b)
	}
	res, err := f.Run(ctx, remote.Script("print", "echo hello; echo warn >&2; exit 3"))
	var exit *remote.ExitError
	if !errors.As(err, &exit) || exit.Code != 3 || exit.Target != remote.LocalTarget || string(res.Stdout) != "hello\n" {
		t.Errorf("inner's answer changed on the way: %+v, %v", res, err)
	}

	dest := filepath.Join(dir, "releases", "r1.tar")
	data := bytes.Repeat([]byte{7}, 200_000)
	var sent int
	if err := f.Upload(ctx, bytes.NewReader(data), dest, func(n int) { sent += n }); err != nil {
		t.Fatal(err)
	}
	if sent != len(data) {
		t.Errorf("progress %d, want %d", sent, len(data))
	}
	if got, err := f.ReadFile(ctx, dest); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}

	marker := filepath.Join(dir, "broke")
	if _, err := f.Run(ctx, remote.Script("break things", "touch "+remote.Quote(marker))); outcome(err) != "exit 5" {
		t.Errorf("rule did not answer: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a call answered by a rule ran on Inner")
	}

	// The command runs, but its answer is lost with the connection.
	ran := filepath.Join(dir, "dropped")
	if _, err := f.Run(ctx, remote.Script("drop after", "touch "+remote.Quote(ran))); outcome(err) != "lost" {
		t.Errorf("drop: %v, want a lost connection", err)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Error("Pass with LoseConnection did not run the command first")
	}
	if _, err := f.ReadFile(ctx, dest); outcome(err) != "lost" {
		t.Errorf("read after the drop: %v, want a lost connection", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	f := remotetest.New("web1", nil)
	f.On("step").Nth(25).Exit(1, "")
	f.On("slow").Delay(time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := do(context.Background(), f, "run step")
			if i%5 == 0 {
				f.Upload(context.Background(), strings.NewReader("x"), "/srv/slow", func(int) {})
			}
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
			f.Calls()
			f.Count("step")
		}()
	}
	wg.Wait()
	if failed != 1 {
		t.Errorf("%d calls failed, want exactly the 25th", failed)
	}
	if n := f.Count("step"); n != 50 {
		t.Errorf("Count(step) = %d, want 50", n)
	}
	if st := f.Stats(); st.Sessions != 60 {
		t.Errorf("%d sessions, want 60", st.Sessions)
	}
}
