package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// running is a remote command started with its standard streams open: on
// a session of its own, or on a persistent shell handed over to it.
type running struct {
	sess    *ssh.Session
	stdin   io.WriteCloser // nil unless asked for
	group   *groupCapture  // its stderr; knows its process group
	done    <-chan error   // how it ended, once its output is all in
	release func()
	// taken, for a shell handed over without waiting (handOverEarly), is
	// decided once the agent answered: nil when it runs the script, an
	// error wrapping errNoAgent when it had ended, in which case no byte
	// of input reached a script. Nil for the other ways to start.
	taken *answer
}

// answer is a result that comes once and can be awaited by several.
type answer struct {
	ready chan struct{}
	err   error
}

func newAnswer() *answer { return &answer{ready: make(chan struct{})} }

func (a *answer) set(err error) {
	a.err = err
	close(a.ready)
}

// known reports whether the answer came, and what it is.
func (a *answer) known() (bool, error) {
	select {
	case <-a.ready:
		return true, a.err
	default:
		return false, nil
	}
}

// wait blocks until the answer came.
func (a *answer) wait() error {
	<-a.ready
	return a.err
}

// startStreaming starts script with its output going to stdout and stderr
// as it comes and, with withStdin, its input from the returned pipe. An
// idle persistent shell is handed over to it when there is one: the
// command then costs neither a session nor a login shell, and another
// shell starts meanwhile for the commands that follow. Otherwise it runs
// on a session of its own.
func (s *SSH) startStreaming(ctx context.Context, script string, stdout, stderr io.Writer, withStdin bool) (*running, error) {
	if r, err := s.handOver(ctx, script, stdout, stderr, withStdin); !errors.Is(err, errNoAgent) {
		return r, err
	}
	return s.startSession(ctx, script, stdout, stderr, withStdin)
}

// startStreamingEarly is startStreaming for input the caller can send
// again: a handed-over shell's input may be written at once, without
// waiting a round trip for the agent's answer (see running.taken).
func (s *SSH) startStreamingEarly(ctx context.Context, script string, stdout, stderr io.Writer) (*running, error) {
	if r, err := s.handOverEarly(script, stdout, stderr); !errors.Is(err, errNoAgent) {
		return r, err
	}
	return s.startSession(ctx, script, stdout, stderr, true)
}

// startSession starts script on a session of its own.
func (s *SSH) startSession(ctx context.Context, script string, stdout, stderr io.Writer, withStdin bool) (*running, error) {
	sess, release, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	group := &groupCapture{w: stderr}
	sess.Stdout, sess.Stderr = stdout, group
	r := &running{sess: sess, group: group, release: release}
	if withStdin {
		// A pipe rather than sess.Stdin: Wait must not wait for a reader
		// the command never drained.
		if r.stdin, err = sess.StdinPipe(); err != nil {
			release()
			return nil, err
		}
	}
	if err := sess.Start(shellLine(script)); err != nil {
		release()
		return nil, s.transportErr(fmt.Errorf("start: %w", err))
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	r.done = done
	return r, nil
}

// handOver runs script in place of an idle persistent shell (the
// agent's "hand" request). It returns errNoAgent, having used nothing,
// when no shell is idle or the one it took turns out to have ended.
func (s *SSH) handOver(ctx context.Context, script string, stdout, stderr io.Writer, withStdin bool) (*running, error) {
	a, _, err := s.getAgent(ctx, true, "")
	if err != nil {
		return nil, err
	}
	id, req, group := s.handRequest(a, script, stderr)
	acked := make(chan error, 1)
	go func() {
		if _, err := a.in.Write(req); err != nil {
			acked <- fmt.Errorf("%w: %w", errNoAgent, err)
			return
		}
		line, err := a.out.ReadString('\n')
		if want := fmt.Sprintf("hand %d\n", id); err != nil || line != want {
			acked <- fmt.Errorf("%w: no handover (%q, %v)%s", errNoAgent, strings.TrimSpace(line), err, a.stderrNote())
			return
		}
		acked <- nil
	}()
	select {
	case err = <-acked:
	case <-ctx.Done():
		// The script may be starting: stop it with the shell.
		s.stopGroup(a.group)
		s.agents.drop(a)
		return nil, ctx.Err()
	}
	if err != nil {
		a.stderr.set(a.diag)
		s.agents.drop(a)
		return nil, err
	}
	// The session is the script's now: it leaves the pool, whose slot goes
	// to a shell for the commands that follow.
	<-s.agents.busy
	s.warm(1)

	if !withStdin {
		a.in.Close()
	}
	done := make(chan error, 1)
	go func() {
		if stdout == nil {
			stdout = io.Discard
		}
		io.Copy(stdout, a.out)
		<-a.exited
		done <- a.waitErr
	}()
	r := &running{sess: a.sess, group: group, done: done, release: a.close}
	if withStdin {
		r.stdin = a.in
	}
	return r, nil
}

// handRequest frames the request that hands agent a over to script, and
// gives the agent's stderr to the script's, whose process group it is.
func (s *SSH) handRequest(a *shellAgent, script string, stderr io.Writer) (id int64, req []byte, group *groupCapture) {
	a.seq++
	id = a.seq
	req = append(requestHeader("hand", id, script, -1), fmt.Sprintf("end %d\n", id)...)
	s.roundTrips.Add(1)
	// The script's stderr may come before the reply on stdout is read:
	// the agent writes none of its own, so it goes to the script's at once.
	group = &groupCapture{w: stderr, done: true}
	group.pgid.Store(a.group)
	a.stderr.set(group)
	return id, req, group
}

// handOverEarly is handOver with input, returning as soon as the request
// is sent: the script's input can follow it at once, which saves the
// round trip of the agent's answer. It returns errNoAgent, having used
// nothing, when no shell is idle or the one it took is known to have
// ended. One that ended unbeknown to the runner is found out by its
// answer (running.taken): the caller then sends the input again,
// elsewhere.
func (s *SSH) handOverEarly(script string, stdout, stderr io.Writer) (*running, error) {
	a, _, err := s.getAgent(context.Background(), true, "")
	if err != nil {
		return nil, err
	}
	if a.dead() {
		s.agents.drop(a)
		return nil, errNoAgent
	}
	id, req, group := s.handRequest(a, script, stderr)
	if _, err := a.in.Write(req); err != nil {
		a.stderr.set(a.diag)
		s.agents.drop(a)
		return nil, fmt.Errorf("%w: %w", errNoAgent, err)
	}
	// The session is the script's from here, or nobody's: either way it
	// leaves the pool, whose slot goes to a shell for the commands after.
	<-s.agents.busy
	s.warm(1)

	taken := newAnswer()
	done := make(chan error, 1)
	go func() {
		line, err := a.out.ReadString('\n')
		if want := fmt.Sprintf("hand %d\n", id); err != nil || line != want {
			err := fmt.Errorf("%w: no handover (%q, %v)%s", errNoAgent, strings.TrimSpace(line), err, a.stderrNote())
			taken.set(err)
			a.close()
			done <- err
			return
		}
		taken.set(nil)
		if stdout == nil {
			stdout = io.Discard
		}
		io.Copy(stdout, a.out)
		<-a.exited
		done <- a.waitErr
	}()
	return &running{sess: a.sess, stdin: a.in, group: group, done: done, release: a.close, taken: taken}, nil
}

// Warm starts a second persistent shell in the background, unless two
// are idle or one is already starting. Called ahead of a streaming command
// (an upload), which takes an idle shell over, it keeps the login shell of
// the commands after it off their path. Called before the connection ran
// any command, it starts that shell aside: the first command starts its
// own, carrying its script, and the upload takes that one over.
func (s *SSH) Warm() {
	if s.agents.enabled() && !s.closed() {
		s.warm(2)
	}
}

// warm starts a shell in the background unless spare ones are idle or one
// is starting. The start is announced before warm returns, so a request
// right after it waits for that shell rather than start another.
func (s *SSH) warm(spare int) {
	p := s.agents
	p.mu.Lock()
	first := len(p.idle) == 0 && len(p.busy) == 0 // the connection has no shell yet
	p.mu.Unlock()
	select {
	case p.busy <- struct{}{}:
	default:
		return // the pool is full: nothing would wait for a new shell
	}
	p.mu.Lock()
	if len(p.idle) >= spare || p.warming != nil || p.closed {
		p.mu.Unlock()
		<-p.busy
		return
	}
	ready := make(chan struct{})
	p.warming, p.aside = ready, first
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			p.warming, p.aside = nil, false
			p.mu.Unlock()
			close(ready)
		}()
		a, err := s.startAgent("")
		if err != nil {
			if errors.Is(err, errNoAgent) {
				p.off.Store(true)
			}
			<-p.busy
			return
		}
		p.put(a)
	}()
}

// switchWriter passes writes on to a writer that can be replaced: an
// agent's stderr goes to its diagnostics until a command takes it over.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *switchWriter) set(to io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w = to
}
