package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestAgentShellcheck: the scripts this package runs on servers are
// shellcheck-clean.
func TestAgentShellcheck(t *testing.T) {
	const install = "install shellcheck (apt-get install shellcheck)"
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(install)
		}
		t.Skip(install)
	}
	// --norc: a shellcheckrc on this machine must not switch checks off.
	out, err := exec.Command(bin, "--norc", "--shell=sh", "--severity=style", "agent.sh", "batch.sh").CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// wrapper says how the test server's forced command treats each session
// before running the requested command, as an account's login shell would.
type wrapper struct {
	delay  string // sleep this long first, e.g. "0.2": a slow .bashrc
	junk   bool   // print a banner to stdout first
	noDD   bool   // put a dd without byte counts first in PATH
	refuse bool   // fail on the agent's command line, as a non-POSIX shell would
	record bool   // keep each session's command line, as the server's ps shows it
}

// wrappedHost is a test sshd whose sessions all go through a wrapper.
type wrappedHost struct {
	*testenv.Host
	log      string // one line per session started
	commands string // with record, the sessions' command lines
}

// sessions counts the sessions the server started.
func (h *wrappedHost) sessions(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(h.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// startWrappedSSHD starts sshd with a ForceCommand script in a temporary
// directory, so the test account's own dotfiles stay untouched.
func startWrappedSSHD(t testing.TB, w wrapper) *wrappedHost {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sshd: skipped with -short")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "sessions.log")
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\necho session >> %s\n", remote.Quote(log))
	commands := filepath.Join(dir, "commands")
	if w.record {
		fmt.Fprintf(&b, "printf '%%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> %s\n", remote.Quote(commands))
	}
	if w.delay != "" {
		fmt.Fprintf(&b, "sleep %s\n", w.delay)
	}
	if w.junk {
		b.WriteString("echo 'Welcome! Last login: never'\nprintf 'a prompt without newline '\n")
	}
	if w.noDD {
		bin := filepath.Join(dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		fake := "#!/bin/sh\necho 'dd: unknown operand iflag' >&2\nexit 1\n"
		if err := os.WriteFile(filepath.Join(bin, "dd"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "PATH=%s:$PATH\nexport PATH\n", remote.Quote(bin))
	}
	if w.refuse {
		b.WriteString("case $SSH_ORIGINAL_COMMAND in *stagecoach-agent*) echo \"Unmatched '.\" >&2; exit 1 ;; esac\n")
	}
	b.WriteString("exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n")
	script := filepath.Join(dir, "wrapper")
	if err := os.WriteFile(script, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return &wrappedHost{Host: testenv.StartSSHD(t, testenv.WithConfig("ForceCommand "+script)), log: log, commands: commands}
}

// dialWith dials h with cfg changed by edit.
func dialWith(t testing.TB, h *testenv.Host, edit func(*remote.SSHConfig)) *remote.SSH {
	t.Helper()
	cfg := h.SSHConfig()
	edit(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := remote.DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestAgentOneSessionForManyRuns(t *testing.T) {
	h := startWrappedSSHD(t, wrapper{})
	r := h.Dial(t)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		res, err := r.Run(ctx, remote.Cmd("echo", "echo", strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(res.Stdout)); got != strconv.Itoa(i) {
			t.Fatalf("run %d printed %q", i, got)
		}
	}
	st := r.Stats()
	if st.Sessions != 1 || st.RoundTrips != 101 {
		t.Errorf("100 runs: %d sessions, %d round trips; want 1 and 101", st.Sessions, st.RoundTrips)
	}
	if n := h.sessions(t); n != 1 {
		t.Errorf("the server started %d sessions, want 1", n)
	}
}

// TestAgentBinaryStdio sends inputs and outputs that contain the
// protocol's own lines, every byte value, no final newline, or megabytes,
// one after the other on the same shell.
func TestAgentBinaryStdio(t *testing.T) {
	r := startSSHD(t).Dial(t)
	ctx := context.Background()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	random := make([]byte, 5<<20+7)
	rand.New(rand.NewSource(1)).Read(random)
	inputs := map[string][]byte{
		"empty":        {},
		"no newline":   []byte("abc"),
		"only newline": []byte("\n\n\n"),
		"protocol":     []byte("end 1\nrun 2 3 4\nstarted 1 2\ndone 1 0 5 5\nfail 1 x\nx"),
		"every byte":   bytes.Repeat(all, 1000),
		"large random": random,
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			cmd := remote.Script("echo back", "cat; cat >&2 <<'EOF'\nerr\nEOF")
			cmd.Stdin = bytes.NewReader(in)
			res, err := r.Run(ctx, cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Stdout, in) {
				t.Errorf("stdout: %d bytes back, want the %d sent", len(res.Stdout), len(in))
			}
			if string(res.Stderr) != "err\n" {
				t.Errorf("stderr %q", res.Stderr)
			}
			// The same bytes as stderr, and as an exit error's stderr.
			cmd = remote.Script("echo back on stderr", "cat >&2; exit 3")
			cmd.Stdin = bytes.NewReader(in)
			res, err = r.Run(ctx, cmd)
			var exit *remote.ExitError
			if !errors.As(err, &exit) || exit.Code != 3 || !bytes.Equal(res.Stderr, in) || len(res.Stdout) != 0 {
				t.Errorf("stderr: error %v, %d bytes back, want exit 3 with the %d sent", err, len(res.Stderr), len(in))
			}
		})
	}
	// Output the script makes itself, large and without a final newline.
	res, err := r.Run(ctx, remote.Script("generate", "head -c 3000000 /dev/zero | tr '\\0' x; printf 'run 1 2 3\\nend'"))
	if err != nil || len(res.Stdout) != 3000000+len("run 1 2 3\nend") || !bytes.HasSuffix(res.Stdout, []byte("xrun 1 2 3\nend")) {
		t.Errorf("generated output: %d bytes, %v", len(res.Stdout), err)
	}
	// Scripts whose text ends the way the framing might trip on.
	for _, src := range []string{"printf x", "printf '%s' abc\n\n\n", "printf 'a\\n'\n#x", "cat <<EOF\nhere\nEOF"} {
		if _, err := r.Run(ctx, remote.Script("text", src)); err != nil {
			t.Errorf("script %q: %v", src, err)
		}
	}
	if res, err := r.Run(ctx, remote.Script("trailing x", "printf x")); err != nil || string(res.Stdout) != "x" {
		t.Errorf("printf x: %q %v", res.Stdout, err)
	}
	if n := r.Stats().Sessions; n != 1 {
		t.Errorf("%d sessions, want all on one shell", n)
	}
}

// TestAgentScriptInput: a script reading past its input gets end of file,
// never the requests that follow; one without input reads nothing.
func TestAgentScriptInput(t *testing.T) {
	r := startSSHD(t).Dial(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		in := fmt.Sprintf("input %d", i)
		cmd := remote.Script("read all", "cat; cat; dd bs=1M count=10 2>/dev/null; read -r x; echo \"[$x]\"")
		cmd.Stdin = strings.NewReader(in)
		res, err := r.Run(ctx, cmd)
		if err != nil || string(res.Stdout) != in+"[]\n" {
			t.Fatalf("run %d: %q %v, want only its input", i, res.Stdout, err)
		}
		res, err = r.Run(ctx, remote.Script("read none", "wc -c"))
		if err != nil || strings.TrimSpace(string(res.Stdout)) != "0" {
			t.Fatalf("run without input read %q, %v", res.Stdout, err)
		}
	}
}

// TestAgentScriptsCannotBreakIt: exit, closed or redirected descriptors,
// signals and processes left writing behind do not disturb later runs.
func TestAgentScriptsCannotBreakIt(t *testing.T) {
	r := startSSHD(t).Dial(t)
	ctx := context.Background()
	for _, tc := range []struct {
		script string
		code   int
	}{
		{"echo before; exit 5", 5},
		{"exec >&- 2>&- <&-; exit 0", 0},
		{"exec 1>&2; echo to stderr", 0},
		{"kill -KILL $$", 137},
		{"kill -TERM $$", 143},
		{"(sleep 0.3; echo late; echo late >&2) & echo early", 0},
		{"set -e; false", 1},
		{"cd /; export X=leaked; umask 0777", 0},
		{"exit", 0},
	} {
		_, err := r.Run(ctx, remote.Script("step", tc.script))
		code := 0
		var exit *remote.ExitError
		if errors.As(err, &exit) {
			code = exit.Code
		} else if err != nil {
			t.Fatalf("%q: %v", tc.script, err)
		}
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.script, code, tc.code)
		}
		res, err := r.Run(ctx, remote.Script("check", `printf '%s|%s|' "${X-unset}" "$(umask)"; echo ok`))
		if err != nil || !strings.HasSuffix(string(res.Stdout), "|ok\n") || strings.Contains(string(res.Stdout), "leaked") || strings.Contains(string(res.Stdout), "0777") || len(res.Stderr) != 0 {
			t.Fatalf("after %q: %q %q %v", tc.script, res.Stdout, res.Stderr, err)
		}
	}
	time.Sleep(400 * time.Millisecond) // the late writer has written
	res, err := r.Run(ctx, remote.Cmd("echo", "echo", "clean"))
	if err != nil || string(res.Stdout) != "clean\n" || len(res.Stderr) != 0 {
		t.Fatalf("after a late writer: %q %q %v", res.Stdout, res.Stderr, err)
	}
	if n := r.Stats().Sessions; n != 1 {
		t.Errorf("%d sessions, want all on one shell", n)
	}
}

func TestAgentConcurrentRuns(t *testing.T) {
	h := startWrappedSSHD(t, wrapper{})
	r := h.Dial(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := remote.Script("echo", "sleep 0.1; cat; echo "+strconv.Itoa(i))
			cmd.Stdin = strings.NewReader(strconv.Itoa(i) + "-")
			res, err := r.Run(context.Background(), cmd)
			if err == nil && string(res.Stdout) != fmt.Sprintf("%d-%d\n", i, i) {
				err = fmt.Errorf("run %d printed %q", i, res.Stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := r.Stats()
	if st.Sessions < 2 || st.Sessions > remote.DefaultMaxAgents {
		t.Errorf("20 concurrent runs opened %d sessions, want 2 to %d", st.Sessions, remote.DefaultMaxAgents)
	}
	if n := h.sessions(t); int64(n) != st.Sessions {
		t.Errorf("the server started %d sessions, the runner counted %d", n, st.Sessions)
	}
	if st.RoundTrips != 20+st.Sessions {
		t.Errorf("%d round trips, want %d", st.RoundTrips, 20+st.Sessions)
	}
}

// alive reports whether process pid of this machine runs (and is no zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && !bytes.HasPrefix(stat[i+1:], []byte(" Z"))
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; alive(pid); i++ {
		if i == 100 {
			t.Fatalf("process %d still running after cancel", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentCancel cancels scripts mid-run, among them one that ignores
// TERM: their processes die, the call returns the context's error at once,
// and the runner goes on, on the same shell once it answered.
func TestAgentCancel(t *testing.T) {
	r := startSSHD(t).Dial(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, trap string
		stream     bool // the command streams its output: it takes the shell over
	}{{"plain", "", false}, {"ignores TERM", "trap '' TERM; ", false}, {"handed the shell, ignores TERM", "trap '' TERM; ", true}} {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(dir, "pid")
			os.Remove(pidFile)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := remote.Script("sleep", tc.trap+"sleep 30 & echo $! > "+remote.Quote(pidFile)+"; wait; wait")
			if tc.stream {
				cmd.Stdout = &bytes.Buffer{}
			}
			go func() {
				for {
					if _, err := os.Stat(pidFile); err == nil {
						cancel()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			start := time.Now()
			_, err := r.Run(ctx, cmd)
			if !errors.Is(err, context.Canceled) || remote.IsConnectionLost(err) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run returned %s after the cancel", d)
			}
			b, _ := os.ReadFile(pidFile)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			res, err := r.Run(context.Background(), remote.Cmd("echo", "echo", "after"))
			if err != nil || string(res.Stdout) != "after\n" {
				t.Fatalf("run after the cancel: %q %v", res.Stdout, err)
			}
		})
	}
	// The kills took a session each, as no other shell was idle. The shell
	// comes back once it answers; the one whose script ignored TERM may
	// answer only after the next run opened a second shell. The command
	// handed a shell ends it, and one more starts meanwhile.
	if n := r.Stats().Sessions; n > 6 {
		t.Errorf("%d sessions, want at most 3 shells and 3 kills", n)
	}
	// A deadline that passes while waiting for a busy shell.
	slow := dialWith(t, startSSHD(t), func(c *remote.SSHConfig) { c.MaxAgents = 1 })
	go slow.Run(context.Background(), remote.Script("hold", "sleep 1"))
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := slow.Run(ctx, remote.Cmd("true", "true")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a shell: error %v, want the deadline", err)
	}
}

// TestAgentCancelAnyMoment cancels runs after delays that land before the
// request is sent, while it is read, as the script starts and while it
// runs: no script is left running, and the runner keeps working.
func TestAgentCancelAnyMoment(t *testing.T) {
	r := startSSHD(t).Dial(t)
	tag := fmt.Sprintf("31.%d", time.Now().UnixNano()%1000000)
	for i := 0; i < 30; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*time.Millisecond/2)
		cmd := remote.Script("sleep", "exec sleep "+tag)
		cmd.Stdin = bytes.NewReader(make([]byte, 64<<10))
		_, err := r.Run(ctx, cmd)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run %d: error %v, want the deadline", i, err)
		}
	}
	sleeping := func() (n int) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == "sleep\x00"+tag+"\x00" {
				if pid, _ := strconv.Atoi(e.Name()); alive(pid) {
					n++
				}
			}
		}
		return n
	}
	// A cancel kills through a second session, TERM then KILL 2 s later:
	// give a loaded machine time to run them.
	for i := 0; sleeping() > 0 && i < 300; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	// Known race, still open: about one run in several, one of the 30
	// cancels misses its script, which then runs to its end. More than one
	// is a failure of cancelling as such.
	switch n := sleeping(); {
	case n > 1:
		t.Fatalf("%d cancelled scripts still running", n)
	case n == 1:
		t.Logf("one cancelled script of 30 still running (the known race)")
		killSleeping(t, tag)
	}
	if res, err := r.Run(context.Background(), remote.Cmd("echo", "echo", "ok")); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("after the cancels: %q %v", res.Stdout, err)
	}
	t.Logf("%+v", r.Stats())
}

// killSleeping ends the test's leftover `sleep tag` processes.
func killSleeping(t *testing.T, tag string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == "sleep\x00"+tag+"\x00" {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// TestAgentConnectionLost kills the server's side while a script runs: the
// run fails as a lost connection, with exit code -1.
func TestAgentConnectionLost(t *testing.T) {
	h := startSSHD(t)
	r := h.Dial(t)
	mark := filepath.Join(t.TempDir(), "started")
	go func() {
		for {
			if _, err := os.Stat(mark); err == nil {
				h.KillConnections()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // hang guard
	defer cancel()
	res, err := r.Run(ctx, remote.Script("long step", "touch "+remote.Quote(mark)+"; sleep 30"))
	t.Logf("run error: %v", err)
	if !remote.IsConnectionLost(err) || ctx.Err() != nil || !strings.Contains(err.Error(), "long step on "+r.Target()) {
		t.Fatalf("error %v, want a lost connection naming the step", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("exit code %d, want -1", res.ExitCode)
	}
	if _, err := r.Run(ctx, remote.Cmd("true", "true")); !remote.IsConnectionLost(err) {
		t.Errorf("next run: %v, want a lost connection", err)
	}
}

// TestAgentEndedWhileIdle: a shell that died between commands is replaced
// without the next command failing.
func TestAgentEndedWhileIdle(t *testing.T) {
	r := startSSHD(t).Dial(t)
	res, err := r.Run(context.Background(), remote.Script("shell pid", "echo $PPID"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	// The server reports the end at once; a run racing the report would
	// find out only from the missing reply, and could not tell whether its
	// script ran.
	time.Sleep(500 * time.Millisecond)
	if res, err := r.Run(context.Background(), remote.Cmd("echo", "echo", "ok")); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("after the shell died: %q %v", res.Stdout, err)
	}
	if n := r.Stats().Sessions; n != 2 {
		t.Errorf("%d sessions, want 2 shells", n)
	}
}

// TestAgentFallback: on hosts that cannot run the shell, every command has
// a session of its own and works; a chatty login shell still gets one.
func TestAgentFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		w        wrapper
		sessions int64
	}{
		// The failed start of the shell, then a session per command.
		{"no exact dd", wrapper{noDD: true}, 1 + 4},
		{"shell cannot parse it", wrapper{refuse: true}, 1 + 4},
		{"chatty login shell", wrapper{junk: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startWrappedSSHD(t, tc.w)
			r := h.Dial(t)
			for i := 0; i < 3; i++ {
				cmd := remote.Script("echo", "cat; echo "+strconv.Itoa(i))
				cmd.Stdin = strings.NewReader("in")
				res, err := r.Run(context.Background(), cmd)
				if err != nil {
					t.Fatal(err)
				}
				if want := "in" + strconv.Itoa(i) + "\n"; !strings.HasSuffix(string(res.Stdout), want) {
					t.Errorf("run %d printed %q, want %q", i, res.Stdout, want)
				}
			}
			_, err := r.Run(context.Background(), remote.Script("fail", "exit 4"))
			var exit *remote.ExitError
			if !errors.As(err, &exit) || exit.Code != 4 {
				t.Errorf("error %v, want exit 4", err)
			}
			if st := r.Stats(); st.Sessions != tc.sessions {
				t.Errorf("%d sessions, want %d", st.Sessions, tc.sessions)
			}
		})
	}
}

// TestAgentDisabled: MaxAgents < 0 runs a session per command.
func TestAgentDisabled(t *testing.T) {
	h := startSSHD(t)
	r := dialWith(t, h, func(c *remote.SSHConfig) { c.MaxAgents = -1 })
	for i := 0; i < 3; i++ {
		if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Sessions != 3 || st.RoundTrips != 3 {
		t.Errorf("%+v, want 3 sessions and round trips", st)
	}
}

// TestAgentFirstRequest: the command that starts a shell carries the first
// request when it is Public, reads no stdin and fits a command line: no
// round trip of its own, whatever its outcome, and the shell serves the
// next requests. A script not Public never shows on a command line. One
// given up while its shell starts still ends before the shell is used.
func TestAgentFirstRequest(t *testing.T) {
	h := startWrappedSSHD(t, wrapper{delay: "0.3", record: true})
	secret := dialWith(t, h.Host, func(*remote.SSHConfig) {})
	if _, err := secret.Run(context.Background(), remote.Script("secret", "echo hunter22 >/dev/null")); err != nil {
		t.Fatal(err)
	}
	r := h.Dial(t)
	ctx := context.Background()
	public := func(c remote.Command) remote.Command { c.Public = true; return c }
	res, err := r.Run(ctx, public(remote.Script("fails", "echo out; echo err >&2; exit 3")))
	var ee *remote.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || string(res.Stdout) != "out\n" || strings.TrimSpace(ee.Stderr) != "err" {
		t.Fatalf("first request: %q, %v; want out, err and exit 3", res.Stdout, err)
	}
	long := "echo long # " + strings.Repeat("x", 40<<10)
	in := remote.Cmd("cat", "cat")
	in.Stdin = strings.NewReader("stdin\n")
	for _, c := range []struct {
		cmd  remote.Command
		want string
	}{{remote.Script("long", long), "long\n"}, {in, "stdin\n"}, {remote.Cmd("echo", "echo", "next"), "next\n"}} {
		res, err := r.Run(ctx, c.cmd)
		if err != nil || string(res.Stdout) != c.want {
			t.Fatalf("%s: %q, %v; want %q", c.cmd.Desc, res.Stdout, err, c.want)
		}
	}
	// The session's opening and each request count: the first went with
	// the exec, whose reply the shell's start hides.
	if st := r.Stats(); st.Sessions != 1 || st.RoundTrips != 5 {
		t.Errorf("4 runs: %d sessions, %d round trips; want 1 and 5", st.Sessions, st.RoundTrips)
	}

	// Given up while the login shell starts: the script runs all the same,
	// and its reply is read before the shell serves the next request.
	r2 := h.Dial(t)
	mark := filepath.Join(t.TempDir(), "ran")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := r2.Run(short, public(remote.Script("mark", "echo first; touch "+remote.Quote(mark)))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run given up: %v, want the deadline", err)
	}
	res, err = r2.Run(ctx, remote.Cmd("echo", "echo", "second"))
	if err != nil || string(res.Stdout) != "second\n" {
		t.Fatalf("run after one given up: %q, %v", res.Stdout, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the given-up first request did not run")
		}
	}
	for i := 0; i < 3; i++ {
		if res, err := r2.Run(ctx, remote.Cmd("echo", "echo", "again")); err != nil || string(res.Stdout) != "again\n" {
			t.Fatalf("run %d after: %q, %v", i, res.Stdout, err)
		}
	}
	lines, err := os.ReadFile(h.commands)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lines), "echo out; echo err") {
		t.Errorf("the public first request did not go with the shell's command line:\n%s", lines)
	}
	if strings.Contains(string(lines), "hunter22") {
		t.Errorf("a script not Public showed on a command line:\n%s", lines)
	}
}
