package remote

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// agentScript is the remote half of the persistent shell; its header
// describes the protocol.
//
//go:embed agent.sh
var agentScript string

// agentLine starts the agent from the account's login shell, which thus
// starts once per agent instead of once per command. The script is the
// argument of -c rather than sent on stdin: a shell reading its script from
// a pipe may read ahead into the requests that follow it. The login
// shell's pid, which sshd made the session's process group, is its
// argument: the group to kill to stop a command the agent was handed over
// to.
var agentLine = "exec /bin/sh -c " + Quote(agentScript) + " stagecoach-agent $$"

const (
	// DefaultMaxAgents bounds the persistent shells a runner keeps per host:
	// enough for a deploy's concurrent checks and heartbeats, few enough to
	// leave sessions for uploads.
	DefaultMaxAgents = 4

	agentReady       = "stagecoach-agent 2 ready"
	agentUnsupported = "stagecoach-agent unsupported:"
	// agentStartTimeout bounds the wait for the greeting: a login shell
	// that reads its stdin (a prompt in .bashrc) would never give it.
	agentStartTimeout = 20 * time.Second
	// maxAgentStdin is the largest input sent through an agent, which needs
	// it whole in memory to frame it; larger input streams on a session.
	maxAgentStdin = 16 << 20
	// agentReclaim is how long a cancelled request may take to be answered
	// before its agent is closed instead of reused.
	agentReclaim = 10 * time.Second
	// maxLineScript is the largest script sent as lines, which the agent
	// reads with the shell's read, costing no process but a system call
	// per byte: beyond, a dd reads it faster.
	maxLineScript = 16 << 10
	// maxJunk bounds what a chatty login shell may print before the
	// greeting.
	maxJunk = 64 << 10
)

// errNoAgent means the host cannot run the agent; the runner then opens a
// session per command.
var errNoAgent = errors.New("no shell agent on this host")

// shellAgent is one persistent shell: a session whose stdin and stdout carry
// requests and replies. One request runs on it at a time.
type shellAgent struct {
	sess      *ssh.Session
	in        io.WriteCloser
	out       *bufio.Reader
	diag      *tailBuffer   // its stderr, for messages
	stderr    *switchWriter // where its stderr goes: diag, until handed over
	dir       string        // its private directory on the host
	group     int64         // the session's process group on the host
	seq       int64         // the last request's id
	exited    chan struct{} // closed when the session has ended
	waitErr   error         // how it ended, once exited is closed
	closeOnce sync.Once
	release   func()
}

// close ends the session and frees its slot.
func (a *shellAgent) close() { a.closeOnce.Do(a.release) }

// dead reports whether the session has already ended.
func (a *shellAgent) dead() bool {
	select {
	case <-a.exited:
		return true
	default:
		return false
	}
}

// agentPool keeps a runner's agents: idle ones are reused, busy counts
// those running a request or starting, and bounds them.
type agentPool struct {
	busy   chan struct{}
	off    atomic.Bool // the host cannot run agents
	mu     sync.Mutex
	idle   []*shellAgent
	closed bool
	// warming is closed when the shell started ahead of need (warm) is
	// idle or failed; nil while none starts. aside says it was started
	// as the connection's first: it is for the commands after an upload,
	// and a request that can carry its script starts a shell of its own.
	warming chan struct{}
	aside   bool
}

func newAgentPool(n int) *agentPool {
	p := &agentPool{busy: make(chan struct{}, max(n, 1))}
	p.off.Store(n <= 0)
	return p
}

func (p *agentPool) enabled() bool { return !p.off.Load() }

// popIdle takes the most recently used live agent, closing dead ones.
func (p *agentPool) popIdle() *shellAgent {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		a := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if !a.dead() {
			return a
		}
		a.close()
	}
	return nil
}

// put returns an agent after a request it answered completely.
func (p *agentPool) put(a *shellAgent) {
	p.mu.Lock()
	if p.closed || a.dead() {
		p.mu.Unlock()
		a.close()
	} else {
		p.idle = append(p.idle, a)
		p.mu.Unlock()
	}
	<-p.busy
}

// evict closes the least recently used idle agent, to free its session;
// it reports whether there was one.
func (p *agentPool) evict() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return false
	}
	a := p.idle[0]
	p.idle = p.idle[1:]
	a.close()
	return true
}

// free reports whether a request would get a shell without opening
// one: an agent is idle, or none is busy (the first starts one anyway).
func (p *agentPool) free() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) > 0 || len(p.busy) == 0
}

// warmingNow returns the channel closed when the shell being started
// ahead of need is ready, or nil; and whether it was started aside.
func (p *agentPool) warmingNow() (chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.warming, p.aside
}

// drop closes an agent whose state is unknown.
func (p *agentPool) drop(a *shellAgent) {
	a.close()
	<-p.busy
}

// close closes the idle agents; busy ones are closed when returned.
func (p *agentPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, a := range p.idle {
		a.close()
	}
	p.idle = nil
}

// getAgent returns an idle agent, or starts one when fewer than the limit
// are busy, else waits. fresh tells a new agent; one started with first
// (see startAgent) runs it as request 1, whose reply is the caller's to
// read. With onlyIdle it returns errNoAgent rather than start or wait for
// one. The caller must give the agent back with put or drop.
func (s *SSH) getAgent(ctx context.Context, onlyIdle bool, first string) (a *shellAgent, fresh bool, err error) {
	p := s.agents
	if s.closed() {
		return nil, false, fmt.Errorf("open session: %w", errRunnerClosed)
	}
	if onlyIdle {
		select {
		case p.busy <- struct{}{}:
		default:
			return nil, false, errNoAgent
		}
	} else {
		select {
		case p.busy <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	if !p.enabled() {
		<-p.busy
		return nil, false, errNoAgent
	}
	if a := p.popIdle(); a != nil {
		return a, false, nil
	}
	if onlyIdle {
		<-p.busy
		return nil, false, errNoAgent
	}
	// A shell started ahead of need is nearer ready than a new one, unless
	// it was started aside and the new one carries the request on its
	// command line, answering as soon as the other could be sent it.
	if w, aside := p.warmingNow(); w != nil && !(aside && first != "") {
		select {
		case <-w:
		case <-ctx.Done():
			<-p.busy
			return nil, false, ctx.Err()
		}
		if a := p.popIdle(); a != nil {
			return a, false, nil
		}
	}
	// The start goes on when ctx ends: a caller with a short deadline (a
	// health check) would otherwise pay for a shell it never uses, and the
	// next would too.
	type started struct {
		a   *shellAgent
		err error
	}
	ch := make(chan started, 1)
	go func() {
		a, err := s.startAgent(first)
		if errors.Is(err, errNoAgent) {
			p.off.Store(true)
		}
		ch <- started{a, err}
	}()
	select {
	case st := <-ch:
		if st.err != nil {
			<-p.busy
			return nil, false, st.err
		}
		return st.a, true, nil
	case <-ctx.Done():
		go func() {
			st := <-ch
			switch {
			case st.err != nil:
				<-p.busy
			case first != "":
				// The first request runs anyway: its reply is read, and
				// dropped, before the agent serves another.
				s.exchange(st.a, &agentCall{id: 1}, "", nil, false, true)
			default:
				p.put(st.a)
			}
		}()
		return nil, false, ctx.Err()
	}
}

// startAgent opens a session running the agent and waits for its greeting.
// It fails with errNoAgent when the host cannot run it: the agent said so,
// the shell ended without greeting, or gave none in time. A first script
// goes with the command that starts the agent, which runs it as request 1
// once it greeted: see firstRequest.
func (s *SSH) startAgent(first string) (*shellAgent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), agentStartTimeout)
	defer cancel()
	sess, release, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	diag := &tailBuffer{max: 4 << 10}
	a := &shellAgent{sess: sess, release: release, diag: diag, stderr: &switchWriter{w: diag}, exited: make(chan struct{})}
	fail := func(err error) (*shellAgent, error) {
		a.close()
		return nil, err
	}
	if a.in, err = sess.StdinPipe(); err != nil {
		return fail(fmt.Errorf("start shell agent: %w", err))
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return fail(fmt.Errorf("start shell agent: %w", err))
	}
	a.out = bufio.NewReaderSize(out, 64<<10)
	sess.Stderr = a.stderr
	line := agentLine
	if first != "" {
		line += " " + Quote(first)
		a.seq = 1
	}
	if err := sess.Start(line); err != nil {
		return fail(s.transportErr(fmt.Errorf("start shell agent: %w", err)))
	}
	go func() {
		a.waitErr = sess.Wait()
		close(a.exited)
	}()
	ready := make(chan error, 1)
	go func() { ready <- a.greet() }()
	select {
	case err = <-ready:
	case <-ctx.Done():
		a.close()
		<-ready
		return nil, fmt.Errorf("%w: no greeting within %s", errNoAgent, agentStartTimeout)
	}
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, errNoAgent):
		return fail(err)
	}
	// Output ended before the greeting: a shell that ran and exited (it
	// could not parse the line, or a forced command ignored it) reports a
	// status; a dropped connection does not.
	select {
	case <-a.exited:
	case <-time.After(closeGrace):
	}
	var exit *ssh.ExitError
	if a.dead() && (a.waitErr == nil || errors.As(a.waitErr, &exit)) {
		return fail(fmt.Errorf("%w: the shell exited without starting it: %v %s", errNoAgent, a.waitErr, Tail(a.diag.String(), 3)))
	}
	return fail(s.transportErr(fmt.Errorf("start shell agent: %w", err)))
}

// greet reads up to the greeting, skipping what a chatty login shell
// printed first.
func (a *shellAgent) greet() error {
	junk := 0
	for {
		line, err := a.out.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if err != nil {
			return err
		}
		l := strings.TrimRight(string(line), "\n")
		if _, rest, ok := strings.Cut(l, agentReady+" "); ok {
			group, dir, _ := strings.Cut(rest, " ")
			id, err := strconv.ParseInt(group, 10, 64)
			if err == nil && id > 0 && strings.HasPrefix(dir, "/") {
				a.group, a.dir = id, dir
				return nil
			}
		}
		if _, reason, ok := strings.Cut(l, agentUnsupported); ok {
			return fmt.Errorf("%w: %s", errNoAgent, strings.TrimSpace(reason))
		}
		if junk += len(line); junk > maxJunk {
			return fmt.Errorf("%w: no greeting in the first %d bytes of output", errNoAgent, maxJunk)
		}
	}
}

// agentCall is the state one request shares between Run, which may give up
// on it, and the goroutine that carries it out.
type agentCall struct {
	id        int64
	mu        sync.Mutex
	finished  bool
	abandoned bool // closed for taking too long after a cancel
}

// finish marks the exchange over; it reports whether the agent may be
// reused, which it may not once abandoned.
func (c *agentCall) finish() (reusable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	return !c.abandoned
}

// abandon marks a call that is still unanswered; it reports whether it was.
func (c *agentCall) abandon() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return false
	}
	c.abandoned = true
	return true
}

// agentReply is how a request ended.
type agentReply struct {
	code           int
	stdout, stderr []byte
	err            error
	unsent         bool // the request could not be written: it never ran
	refused        bool // the agent failed before running the script
}

// exchange sends one request, unless it was sent already (the first
// request of an agent started with it), and reads its reply, then returns
// the agent to the pool, or closes it if anything went wrong.
func (s *SSH) exchange(a *shellAgent, c *agentCall, script string, stdin []byte, hasStdin, sent bool) agentReply {
	r := s.roundTrip(a, c.id, script, stdin, hasStdin, sent)
	if c.finish() && r.err == nil {
		s.agents.put(a)
	} else {
		s.agents.drop(a)
	}
	return r
}

func (s *SSH) roundTrip(a *shellAgent, id int64, script string, stdin []byte, hasStdin, sent bool) agentReply {
	s.roundTrips.Add(1)
	if !sent {
		if err := a.send(id, script, stdin, hasStdin); err != nil {
			return agentReply{err: fmt.Errorf("send to shell agent: %w", err), unsent: true}
		}
	}
	line, err := a.out.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		err = errors.New("reply line too long")
	}
	if err != nil {
		return agentReply{err: fmt.Errorf("shell agent: %w", err)}
	}
	f := strings.Fields(string(line))
	bad := func() agentReply {
		return agentReply{err: s.lostErr(fmt.Errorf("shell agent: unexpected reply %q%s", line, a.stderrNote()))}
	}
	sid := strconv.FormatInt(id, 10)
	switch {
	case len(f) >= 3 && f[0] == "refuse":
		return agentReply{err: fmt.Errorf("shell agent: %s", strings.Join(f[2:], " ")), refused: true}
	case len(f) >= 3 && f[0] == "fail":
		return agentReply{err: s.lostErr(fmt.Errorf("shell agent: %s", strings.Join(f[2:], " ")))}
	case len(f) != 5 || f[0] != "done" || f[1] != sid:
		return bad()
	}
	var n [3]int64
	for i := range n {
		if n[i], err = strconv.ParseInt(f[2+i], 10, 64); err != nil || n[i] < 0 {
			return bad()
		}
	}
	// Copied rather than allocated by the announced size: a garbled
	// number must not allocate gigabytes.
	var stdout, stderr bytes.Buffer
	for _, o := range []struct {
		buf *bytes.Buffer
		n   int64
	}{{&stdout, n[1]}, {&stderr, n[2]}} {
		if _, err := io.CopyN(o.buf, a.out, o.n); err != nil {
			return agentReply{err: fmt.Errorf("shell agent: read output: %w", err)}
		}
	}
	return agentReply{code: int(n[0]), stdout: stdout.Bytes(), stderr: stderr.Bytes()}
}

// send writes request id: its script and, when hasStdin, its stdin.
func (a *shellAgent) send(id int64, script string, stdin []byte, hasStdin bool) error {
	ilen := -1
	if hasStdin {
		ilen = len(stdin)
	}
	req := requestHeader("run", id, script, ilen)
	// One write for the usual small request: fewer packets.
	end := fmt.Appendf(nil, "end %d\n", id)
	if len(stdin) < 64<<10 {
		req = append(append(req, stdin...), end...)
		stdin, end = nil, nil
	}
	for _, b := range [][]byte{req, stdin, end} {
		if len(b) == 0 {
			continue
		}
		if _, err := a.in.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// maxFirstScript bounds a script sent with the command that starts the
// agent: Linux takes at most 128 KiB in one argument, and the agent's own
// script shares the command line.
const maxFirstScript = 32 << 10

// firstRequest is the script an agent started for cmd may run as its
// first request, "" when it must be sent as usual: one not Public, one
// reading stdin, or one too long for a command line.
func firstRequest(cmd Command) string {
	if !cmd.Public || cmd.Stdin != nil || len(cmd.inline()) > maxFirstScript {
		return ""
	}
	return cmd.inline()
}

// requestHeader frames a request's verb, id and script, up to its stdin
// (ilen bytes, -1 for none), which the end line follows.
func requestHeader(verb string, id int64, script string, ilen int) []byte {
	if len(script) <= maxLineScript {
		if !strings.HasSuffix(script, "\n") {
			script += "\n"
		}
		return fmt.Appendf(nil, "%s %d l %d %d\n%s", verb, id, strings.Count(script, "\n"), ilen, script)
	}
	return fmt.Appendf(nil, "%s %d b %d %d\n%sx", verb, id, len(script)+1, ilen, script)
}

// stderrNote is the agent's last diagnostics, to add to an error.
func (a *shellAgent) stderrNote() string {
	if t := Tail(a.diag.String(), 3); t != "" {
		return " (" + t + ")"
	}
	return ""
}

// runAgent runs cmd on an agent. It returns an error wrapping errNoAgent
// when the command should run on a session instead. With control set it
// takes only an idle agent and does not stop the script when ctx ends: it
// is itself the stop of another.
func (s *SSH) runAgent(ctx context.Context, cmd Command, stdin []byte, control bool) (Result, error) {
	start := time.Now()
	desc := describe(cmd)
	fail := func(err error) (Result, error) {
		return Result{ExitCode: -1, Duration: time.Since(start)}, fmt.Errorf("%s on %s: %w", desc, s.target, err)
	}
	for attempt := 0; ; attempt++ {
		first := ""
		if attempt == 0 && !control {
			first = firstRequest(cmd)
		}
		a, fresh, err := s.getAgent(ctx, control, first)
		if errors.Is(err, errNoAgent) {
			return Result{}, err
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return Result{Duration: time.Since(start)}, fmt.Errorf("%s on %s: %w", desc, s.target, err)
			}
			return fail(err)
		}
		sent := fresh && first != ""
		if !sent {
			a.seq++
		}
		call := &agentCall{id: a.seq}
		done := make(chan agentReply, 1)
		go func() { done <- s.exchange(a, call, cmd.inline(), stdin, cmd.Stdin != nil, sent) }()
		select {
		case r := <-done:
			switch {
			case r.unsent && !fresh && attempt == 0:
				continue // an idle agent that had ended: the script never reached it
			case r.refused:
				return Result{}, fmt.Errorf("%w: %w", errNoAgent, r.err)
			case errors.Is(r.err, ErrConnectionLost):
				return fail(r.err)
			case r.err != nil:
				return fail(s.transportErr(r.err))
			}
			res := Result{Stdout: r.stdout, Stderr: r.stderr, ExitCode: r.code, Duration: time.Since(start)}
			if r.code != 0 {
				return res, &ExitError{Target: s.target, Desc: desc, Code: r.code, Stderr: string(r.stderr)}
			}
			return res, nil
		case <-ctx.Done():
			if !control {
				s.cancelRequest(a.dir, call.id)
			}
			// The script dies, the agent answers and goes back to the pool;
			// give that a moment, then leave it to the exchange, and close
			// the agent if no answer comes at all.
			select {
			case <-done:
			case <-time.After(closeGrace):
				time.AfterFunc(agentReclaim, func() {
					if call.abandon() {
						a.sess.Close()
					}
				})
			}
			return Result{Duration: time.Since(start)}, fmt.Errorf("%s on %s: %w", desc, s.target, ctx.Err())
		}
	}
}

// cancelRequest stops request id of the agent whose directory is dir, by
// the handshake the agent's header describes: whether the script has not
// started yet, is starting or runs, it is stopped, with its whole process
// group (the pid is signalled too in case setsid has not made the group
// yet), KILL following TERM for what ignores it.
func (s *SSH) cancelRequest(dir string, id int64) {
	base := dir + "/r" + strconv.FormatInt(id, 10)
	s.control(fmt.Sprintf(`: >%s || exit 0
p=
read -r p <%s 2>/dev/null
case $p in '' | *[!0-9]*) exit 0 ;; esac
kill -TERM -"$p" "$p" 2>/dev/null || exit 0
(sleep 2; kill -KILL -"$p" "$p") >/dev/null 2>&1 </dev/null &`, Quote(base+".cancel"), Quote(base+".pid")))
}

// stopGroup sends TERM to a remote process group, and KILL shortly after
// to whatever ignored it.
func (s *SSH) stopGroup(pgid int64) {
	// No "--": dash's kill does not take it, and a negative number after
	// the signal already means a group.
	s.control(fmt.Sprintf("kill -TERM -%d 2>/dev/null || exit 0\n(sleep 2; kill -KILL -%d) >/dev/null 2>&1 </dev/null &", pgid, pgid))
}

// control runs a command that stops another: on an idle agent if there is
// one, else on a session of its own, never waiting for a busy agent, and
// never itself stopped when it times out.
func (s *SSH) control(script string) {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	cmd := Script("stop cancelled command", script)
	if _, err := s.runAgent(ctx, cmd, nil, true); errors.Is(err, errNoAgent) {
		s.runSession(ctx, cmd, true)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
