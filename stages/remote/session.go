package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// closeGrace is how long a cancelled session may take to report its end
// before it is abandoned.
const closeGrace = 2 * time.Second

// session opens a session on the shared connection, waiting for a free slot.
// release must be called when done.
func (s *SSH) session(ctx context.Context) (sess *ssh.Session, release func(), err error) {
	if s.closed() {
		return nil, nil, fmt.Errorf("open session: %w", errRunnerClosed)
	}
	// Idle persistent shells hold sessions too: one gives way rather than
	// make an upload wait, or be refused by a server allowing fewer
	// sessions than we do.
	select {
	case s.sem <- struct{}{}:
	default:
		s.agents.evict()
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	type opened struct {
		sess *ssh.Session
		err  error
	}
	ch := make(chan opened, 1)
	open := func() {
		sess, err := s.client.NewSession()
		ch <- opened{sess, err}
	}
	go open()
	select {
	case o := <-ch:
		var refused *ssh.OpenChannelError
		if errors.As(o.err, &refused) && s.agents.evict() {
			go open()
			o = <-ch
		}
		if o.err != nil {
			<-s.sem
			err := fmt.Errorf("open session: %w", o.err)
			// A refusal (too many sessions) comes over a working
			// connection; any other failure means it is gone.
			if !errors.As(o.err, &refused) {
				err = s.lostErr(err)
			}
			return nil, nil, err
		}
		s.sessions.Add(1)
		s.roundTrips.Add(1)
		return o.sess, func() { o.sess.Close(); <-s.sem }, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.sess != nil {
				o.sess.Close()
			}
			<-s.sem
		}()
		return nil, nil, ctx.Err()
	}
}

// wait waits for a started command to end. On cancellation it stops the
// remote process group (unless the command is itself a control command),
// closes the channel and returns ctx.Err().
func (s *SSH) wait(ctx context.Context, r *running, control bool) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// OpenSSH honours signal requests only for sessions of non-root
		// users, so also kill the group from a session of our own.
		r.sess.Signal(ssh.SIGTERM)
		if pgid := r.group.pgid.Load(); pgid > 0 && !control {
			s.stopGroup(pgid)
		}
		r.sess.Close()
		select {
		case <-r.done:
		case <-time.After(closeGrace):
		}
		return ctx.Err()
	}
}

// groupMarker starts the line on which the remote login shell reports its
// process id, which is also the session's process group (sshd runs each
// session command in a new session).
const groupMarker = "stagecoach-pgid:"

// shellLine is the command sent to the server: our script under /bin/sh
// whatever the user's login shell is, after reporting the process group.
func shellLine(script string) string {
	return "printf '" + groupMarker + "%d\\n' $$ >&2; exec /bin/sh -c " + Quote(script)
}

// groupCapture takes the process-group line out of stderr and passes the
// rest on. Lines before it (a chatty login shell) pass through too.
type groupCapture struct {
	w       io.Writer
	pgid    atomic.Int64
	line    []byte
	done    bool
	scanned int
}

func (g *groupCapture) Write(p []byte) (int, error) {
	n := len(p)
	for !g.done && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			g.line = append(g.line, p...)
			p = nil
			break
		}
		g.line = append(g.line, p[:i+1]...)
		p = p[i+1:]
		g.scanned += len(g.line)
		if rest, ok := bytes.CutPrefix(g.line, []byte(groupMarker)); ok {
			id, _ := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
			g.pgid.Store(id)
			g.done = true
		} else if _, err := g.w.Write(g.line); err != nil {
			return 0, err
		}
		g.line = g.line[:0]
		if g.scanned > 64<<10 {
			g.done = true // not coming; stop looking
		}
	}
	if len(p) > 0 {
		if _, err := g.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flush passes on a last unterminated line that was held back.
func (g *groupCapture) flush() {
	if !g.done && len(g.line) > 0 {
		g.w.Write(g.line)
		g.line = nil
	}
}

// syncWriter serialises writes from the stdout and stderr copiers when the
// caller passed the same writer for both.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func tee(buf *bytes.Buffer, user io.Writer, mu *sync.Mutex) io.Writer {
	if user == nil {
		return buf
	}
	return io.MultiWriter(buf, syncWriter{mu, user})
}

// Run executes cmd.Script with /bin/sh on the host, on one of the runner's
// persistent shells (see SSHConfig.MaxAgents). A command with Stdout or
// Stderr writers, or with more than 16 MiB of input, takes an idle shell
// over or runs on a session of its own instead, so its output streams as
// it comes and its input is not held in memory; every command on a host
// that cannot run the persistent shell has a session of its own.
func (s *SSH) Run(ctx context.Context, cmd Command) (Result, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil || !s.agents.enabled() {
		return s.runSession(ctx, cmd, false)
	}
	var stdin []byte
	if cmd.Stdin != nil {
		b, err := io.ReadAll(io.LimitReader(cmd.Stdin, maxAgentStdin+1))
		if err != nil {
			return Result{}, fmt.Errorf("%s on %s: read input: %w", describe(cmd), s.target, err)
		}
		if len(b) > maxAgentStdin {
			cmd.Stdin = io.MultiReader(bytes.NewReader(b), cmd.Stdin)
			return s.runSession(ctx, cmd, false)
		}
		stdin = b
	}
	res, err := s.runAgent(ctx, cmd, stdin, false)
	if errors.Is(err, errNoAgent) {
		if cmd.Stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		return s.runSession(ctx, cmd, false)
	}
	return res, err
}

// patiencePoll is how often RunPatient looks for a shell that became free.
const patiencePoll = 20 * time.Millisecond

// RunPatient is Run for a command that may wait (a lock's heartbeat):
// while every persistent shell is busy it waits up to patience for one to
// be free, rather than open another session, which would start the
// account's login shell once more.
func (s *SSH) RunPatient(ctx context.Context, cmd Command, patience time.Duration) (Result, error) {
	deadline := time.Now().Add(patience)
	for s.agents.enabled() && !s.agents.free() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%s on %s: %w", describe(cmd), s.target, ctx.Err())
		case <-time.After(patiencePoll):
		}
	}
	return s.Run(ctx, cmd)
}

// runSession runs cmd on a session of its own; control is for the commands
// that stop another, which are not stopped in turn.
func (s *SSH) runSession(ctx context.Context, cmd Command, control bool) (Result, error) {
	start := time.Now()
	desc := describe(cmd)
	var stdout, stderr bytes.Buffer
	var mu sync.Mutex
	outTo, errTo := tee(&stdout, cmd.Stdout, &mu), tee(&stderr, cmd.Stderr, &mu)
	var r *running
	var err error
	if control {
		r, err = s.startSession(ctx, cmd.Script, outTo, errTo, cmd.Stdin != nil)
	} else {
		r, err = s.startStreaming(ctx, cmd.Script, outTo, errTo, cmd.Stdin != nil)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s on %s: %w", desc, s.target, err)
	}
	defer r.release()
	if r.stdin != nil {
		go func() {
			io.Copy(r.stdin, cmd.Stdin)
			r.stdin.Close()
		}()
	}
	err = s.wait(ctx, r, control)
	if ctx.Err() != nil && err == ctx.Err() {
		return Result{Duration: time.Since(start)}, fmt.Errorf("%s on %s: %w", desc, s.target, err)
	}
	r.group.flush()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	return res, s.exitErr(desc, &res, err)
}

// exitErr turns a session's end into the package's errors.
func (s *SSH) exitErr(desc string, res *Result, err error) error {
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		stderr := string(res.Stderr)
		if sig := exit.Signal(); sig != "" {
			stderr = strings.TrimRight(stderr, "\n") + "\nkilled by signal " + sig
		}
		return &ExitError{Target: s.target, Desc: desc, Code: res.ExitCode, Stderr: stderr}
	default:
		// No exit status: the session ended before the command did, or
		// copying its output failed here.
		res.ExitCode = -1
		return fmt.Errorf("%s on %s: %w", desc, s.target, s.transportErr(err))
	}
}

func describe(cmd Command) string {
	if cmd.Desc != "" {
		return cmd.Desc
	}
	line, _, _ := strings.Cut(strings.TrimSpace(cmd.Script), "\n")
	if len(line) > 60 {
		line = line[:57] + "..."
	}
	return strconv.Quote(line)
}

// ReadFile returns the content of path on the host.
func (s *SSH) ReadFile(ctx context.Context, p string) ([]byte, error) {
	res, err := s.Run(ctx, Cmd("read "+p, "cat", "--", p))
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

// partialName is the temporary name an upload to p is written under.
func partialName(p string) string {
	var b [6]byte
	rand.Read(b[:])
	return p + ".partial-" + hex.EncodeToString(b[:])
}

// uploadScript is upload.sh receiving an upload to p under the temporary
// name tmp.
func uploadScript(p, tmp string) string {
	return "set -- " + Join(path.Dir(p), tmp) + "\n" + uploadSource
}

//go:embed upload.sh
var uploadSource string

// waitScript waits until process pid, the one a fed script runs in, has
// ended (GNU tail polls it every 10 ms), so that the commands after the
// feed can be sent before its answer: they find it done.
func waitScript(pid int64) string {
	return fmt.Sprintf("tail --pid=%d -s 0.01 -f /dev/null", pid)
}

// renameScript moves a complete upload into place, checking its size once
// more so that only a whole file ever appears at p.
func renameScript(p, tmp string, size int64) string {
	return fmt.Sprintf(`tmp=%s
n=$(wc -c < "$tmp") || exit 1
[ "$n" -eq %d ] || { rm -f -- "$tmp"; echo "upload arrived with $n bytes, expected %d" >&2; exit 1; }
mv -f -- "$tmp" %s`, Quote(tmp), size, size, Quote(p))
}

// countingReader reports the bytes read through it. After stop, progress
// is no longer called, so a copy still draining in the background never
// reports after Upload returned.
type countingReader struct {
	r        io.Reader
	mu       sync.Mutex
	n        int64
	stopped  bool
	progress func(int)
	srcErr   error // the source's own failure, told apart from the channel's
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(n)
	if n > 0 && c.progress != nil && !c.stopped {
		c.progress(n)
	}
	if err != nil && err != io.EOF {
		c.srcErr = err
	}
	return n, err
}

// sourceFailed reports whether reading the source failed, as opposed to
// writing to the connection.
func (c *countingReader) sourceFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srcErr != nil
}

// count returns the bytes read so far.
func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stop ends progress reports and returns the bytes read.
func (c *countingReader) stop() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return c.n
}

// Upload streams r into p under a temporary name and renames it into place
// once complete. An interrupted upload leaves nothing at p.
func (s *SSH) Upload(ctx context.Context, r io.Reader, p string, progress func(n int)) error {
	tmp := partialName(p)
	u := s.stream(ctx, r, uploadScript(p, tmp), "receive upload", fmt.Sprintf("upload %s to %s", p, s.target), progress, true)
	sent, err := u.end(ctx, true)
	if err != nil {
		return err
	}
	if _, err := s.Run(ctx, Script("move upload into place", renameScript(p, tmp, sent))); err != nil {
		return fmt.Errorf("upload %s to %s: %w", p, s.target, err)
	}
	return nil
}

// Feed runs cmd's script on the target with r, as it is read, on its
// standard input, and keeps nothing of r there but what the script makes
// of it: the script must read its input to the end. It returns as soon as
// every byte is sent, when it can tell the process the script runs in:
// wait then waits on the target for that process to end, and fed waits
// here for the script's own outcome, which says best why it failed; it
// may be called more than once. The commands after the feed thus go out,
// wait first, without waiting a round trip for its answer.
func (s *SSH) Feed(ctx context.Context, cmd Command, r io.Reader, progress func(n int)) (wait Command, fed func() error, err error) {
	u := s.stream(ctx, r, cmd.Script, cmd.Desc, fmt.Sprintf("%s on %s", cmd.Desc, s.target), progress, false)
	if u.err != nil {
		return Command{}, nil, u.err
	}
	select {
	case <-u.feed.sent:
		if pid := u.run.group.pgid.Load(); pid > 0 {
			wait = Script("wait for "+cmd.Desc, waitScript(pid))
			return wait, sync.OnceValue(func() error { _, err := u.end(ctx, false); return err }), nil
		}
	case <-u.feed.ended:
	case <-ctx.Done():
	}
	if _, err := u.end(ctx, true); err != nil {
		return Command{}, nil, err
	}
	return Script("wait for "+cmd.Desc, ":"), func() error { return nil }, nil
}

// stream starts script on the target, fed r. It goes on an idle
// persistent shell when there is one, the data following the request at
// once; should that shell turn out to have ended, the data read so far is
// sent again on a session of its own (see streaming.end). desc names the
// script in its exit error, and doing the whole operation in every error
// returned. With counted, the script prints the bytes it received, which
// end checks.
func (s *SSH) stream(ctx context.Context, r io.Reader, script, desc, doing string, progress func(n int), counted bool) *streaming {
	u := &streaming{s: s, desc: desc, doing: doing, script: script, counted: counted,
		stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	if u.run, u.err = s.startStreamingEarly(ctx, u.script, u.stdout, u.stderr); u.err != nil {
		u.err = u.fail(u.err)
		return u
	}
	u.src = &countingReader{r: r, progress: progress}
	var in io.Reader = u.src
	if u.run.taken != nil {
		u.kept = &replayReader{r: u.src, taken: u.run.taken}
		in = u.kept
	}
	u.feed = startFeed(u.run, in)
	return u
}

// streaming is a script under way, fed an input.
type streaming struct {
	s              *SSH
	desc, doing    string
	script         string
	counted        bool
	err            error // the start's failure
	run            *running
	src            *countingReader
	kept           *replayReader // nil unless run is a shell handed over early
	feed           *feeding
	stdout, stderr *bytes.Buffer
}

func (u *streaming) fail(err error) error {
	return fmt.Errorf("%s: %w", u.doing, err)
}

// end waits for the script to end and returns the bytes sent. With
// resend, data a shell that had ended swallowed is sent again on a session
// of its own; without, as once the commands after it went out, that is an
// error.
func (u *streaming) end(ctx context.Context, resend bool) (int64, error) {
	if u.err != nil {
		return 0, u.err
	}
	s := u.s
	werr, cerr, lost := u.feed.finish(ctx, s, u.run)
	if lost && resend {
		// The shell had ended: no byte reached a script. Its session may
		// still write to the old buffers.
		u.run.release()
		u.stdout, u.stderr = new(bytes.Buffer), new(bytes.Buffer)
		var err error
		if u.run, err = s.startSession(ctx, u.script, u.stdout, u.stderr, true); err != nil {
			return 0, u.fail(err)
		}
		u.feed = startFeed(u.run, io.MultiReader(bytes.NewReader(u.kept.kept), u.src))
		werr, cerr, _ = u.feed.finish(ctx, s, u.run)
	}
	defer u.run.release()
	sent := u.src.stop()
	if werr != nil {
		if ctx.Err() != nil {
			return 0, u.fail(ctx.Err())
		}
		if cerr != nil && !errors.Is(cerr, io.EOF) {
			cause := fmt.Errorf("after %d bytes: %w", sent, cerr)
			if u.src.sourceFailed() {
				return 0, u.fail(cause) // a broken local source, not the connection
			}
			return 0, u.fail(s.transportErr(cause))
		}
		u.run.group.flush()
		res := Result{Stderr: u.stderr.Bytes()}
		return 0, u.fail(s.exitErr(u.desc, &res, werr))
	}
	// The remote shell ended cleanly, so it read our end of input: the copy is over.
	if cerr != nil {
		return 0, u.fail(cerr)
	}
	if u.counted {
		out := strings.TrimSpace(u.stdout.String())
		if got, err := strconv.ParseInt(out, 10, 64); err != nil || got != sent {
			return 0, u.fail(fmt.Errorf("server received %q bytes, sent %d", out, sent))
		}
	}
	return sent, nil
}

// feeding copies an input into a running command's stdin.
type feeding struct {
	copied chan error    // how the copy ended
	sent   chan struct{} // closed once every byte was sent and stdin closed
	ended  chan struct{} // closed when the copy ended, either way
}

// startFeed copies in to run's input, closing it at the end.
func startFeed(run *running, in io.Reader) *feeding {
	f := &feeding{copied: make(chan error, 1), sent: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(f.ended)
		_, err := io.Copy(run.stdin, in)
		if err != nil {
			// Report first, so the failed Wait below finds the cause; then
			// stop the remote side (closing stdin would look like success).
			f.copied <- err
			run.sess.Signal(ssh.SIGTERM)
			run.sess.Close()
			return
		}
		err = run.stdin.Close()
		if err == nil {
			close(f.sent)
		}
		f.copied <- err
	}()
	return f
}

// finish returns how the command ended (werr) and how the copy did (cerr).
// When the command failed, the copy is given closeGrace to report its
// cause. lost tells a shell handed over that turned out to have ended
// (running.taken), with the deploy not interrupted: the input is to be
// sent again, and finish waited for the copy to stop, so that nothing
// reads the input any more.
func (f *feeding) finish(ctx context.Context, s *SSH, run *running) (werr, cerr error, lost bool) {
	werr = s.wait(ctx, run, false)
	if werr == nil {
		return nil, <-f.copied, false
	}
	// The session is over, so the copy ends once the source's current
	// Read returns; wait for it a little to report its cause.
	run.sess.Close()
	if run.taken != nil && ctx.Err() == nil {
		if known, err := run.taken.known(); known && err != nil {
			return werr, <-f.copied, true
		}
	}
	select {
	case cerr = <-f.copied:
	case <-time.After(closeGrace):
	}
	return werr, cerr, false
}

// replayReader reads through r for the input of a shell handed over
// without waiting for its answer (running.taken), keeping what it read
// until the answer came: should the shell turn out to have ended, that
// input never reached a script and is sent again. It keeps at most
// maxReplay bytes, then waits for the answer.
type replayReader struct {
	r     io.Reader
	taken *answer
	kept  []byte // read while the answer was awaited
	done  bool   // the shell took the script: read through
}

// maxReplay bounds what an upload keeps while the handover's answer is
// on its way: at 50 ms a round trip's worth at 80 Mbit/s, held for each of
// a fleet's hosts at once. Past it, the upload waits for the answer.
const maxReplay = 512 << 10

// errHandoverLost stops the copy into a shell that had ended.
var errHandoverLost = errors.New("the persistent shell had ended")

func (k *replayReader) Read(p []byte) (int, error) {
	if !k.done {
		known, err := k.taken.known()
		if !known && len(k.kept)+len(p) > maxReplay {
			known, err = true, k.taken.wait()
		}
		switch {
		case known && err != nil:
			return 0, errHandoverLost
		case known:
			k.done, k.kept = true, nil
		}
	}
	n, err := k.r.Read(p)
	if !k.done {
		k.kept = append(k.kept, p[:n]...)
	}
	return n, err
}
