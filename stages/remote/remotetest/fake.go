// Package remotetest is a scripted remote.Runner for fast tests of code that
// works on hosts (deploy phases, rollback, locks, self-heal) without a
// server. A Fake records every call and answers by rules; calls no rule
// answers go to an inner runner, such as remote.NewLocal() running the real
// scripts against a temporary directory, or succeed with empty output.
//
//	f := remotetest.New("web1", remote.NewLocal())
//	f.On("swap").Nth(2).LoseConnection()  // the second swap loses the connection
//	f.On("health").Exit(1, "503")         // every health check fails
//	f.FailNth(5, errors.New("disk full")) // so does the fifth call of any kind
package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// ErrClosed is wrapped by the errors of calls made on a connection after
// its Close.
var ErrClosed = errors.New("connection closed")

// Call is one operation the Fake was asked for.
type Call struct {
	Kind   string // "run", "upload" or "read"
	Desc   string // what rules match, see Fake.On
	Script string // the shell source of a run
	Stdin  []byte // a run's input or an upload's data, read to its end (or until ctx ends)
	Path   string // the file of an upload or a read
	Conn   int    // the connection that carried it: 1 is the Fake's own, Connect opens 2, 3, ...
	Batch  int    // the batch that carried it, 1 for the Fake's first; 0: a call of its own
	Err    error  // what the call returned: nil on success and while it runs
}

// Fake is a remote.Runner for tests: a fake host. It records every call
// and answers by rules; a call no rule answers is passed to Inner when set,
// else it succeeds with empty output. The Fake itself is one connection to
// the host; Connect opens more, sharing the rules and the call log. It is
// safe for concurrent use.
type Fake struct {
	Name  string        // what Target returns; "fake" when empty
	Inner remote.Runner // runs the calls no rule answers; nil: they succeed

	mu      sync.Mutex
	rules   []*Rule
	calls   []Call
	conns   []*conn // conns[0] is the Fake's own, made on first use
	batches int
}

var (
	_ remote.Runner = (*Fake)(nil)
	_ remote.Feeder = (*Fake)(nil)
)

// New returns a Fake called name passing unanswered calls to inner (nil:
// they succeed with empty output). The Fake does not close inner.
func New(name string, inner remote.Runner) *Fake {
	return &Fake{Name: name, Inner: inner}
}

// On adds a rule for the calls whose Desc contains match; "" matches every
// call. The Desc of a run is its Command's Desc, or the first line of its
// script when that is empty; of an upload "upload " + path; of a ReadFile
// "read " + path. Rules are tried in the order they were added and the
// first that applies answers. Every rule counts each call it matches,
// whether or not it answered it, so Nth means the n-th matching call. A
// call on a lost or closed connection, or with its context already done,
// never reaches the rules.
func (f *Fake) On(match string) *Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &Rule{f: f, match: match, limit: -1}
	f.rules = append(f.rules, r)
	return r
}

// FailNth makes the n-th call of any kind (1-based) fail with err as is.
// It takes precedence over the rules added with On and counts as a rule
// matching "" does: calls that never reach the host (on a lost or closed
// connection, or with a done context) do not count.
func (f *Fake) FailNth(n int, err error) {
	r := (&Rule{f: f, limit: -1}).Nth(n).Err(err)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append([]*Rule{r}, f.rules...)
}

// Calls returns every call made so far, in order, including those that
// failed.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Descs returns the Desc of every call made so far, in order.
func (f *Fake) Descs() []string {
	var descs []string
	for _, c := range f.Calls() {
		descs = append(descs, c.Desc)
	}
	return descs
}

// Count returns how many calls made so far have a Desc containing match.
func (f *Fake) Count(match string) int {
	n := 0
	for _, c := range f.Calls() {
		if strings.Contains(c.Desc, match) {
			n++
		}
	}
	return n
}

// Connect opens another connection to the fake host, as a reconnect would:
// it shares the rules and the call log, and is lost or closed on its own.
func (f *Fake) Connect() remote.Runner {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ownLocked()
	return f.newConnLocked()
}

// Target is Name, or "fake".
func (f *Fake) Target() string {
	if f.Name == "" {
		return "fake"
	}
	return f.Name
}

// Run answers cmd by the rules or passes it to Inner. Its Stdin is read to
// the end first (or until ctx ends), whoever answers, so a caller writing
// it is never left blocked; Inner gets a copy.
func (f *Fake) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	return f.own().Run(ctx, cmd)
}

// RunBatch runs each command by the rules or through Inner in turn, so a
// rule can fail any command of a batch; it stops at the first failure as
// remote.RunBatch does.
func (f *Fake) RunBatch(ctx context.Context, cmds []remote.Command) ([]remote.Result, []error) {
	return f.own().RunBatch(ctx, cmds)
}

// Upload reads r to the end (or until ctx ends), then answers by the rules
// or passes the data to Inner. progress is called as the data is read when
// the Fake receives it itself, by Inner when it does.
func (f *Fake) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) error {
	return f.own().Upload(ctx, r, path, progress)
}

// Feed is remote.Feeder's: see conn.Feed.
func (f *Fake) Feed(ctx context.Context, cmd remote.Command, r io.Reader, progress func(n int)) (remote.Command, func() error, error) {
	return f.own().Feed(ctx, cmd, r, progress)
}

// ReadFile answers by the rules (Stdout is the content) or asks Inner.
func (f *Fake) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return f.own().ReadFile(ctx, path)
}

// Stats counts the calls that reached the host on the Fake's own
// connection as sessions.
func (f *Fake) Stats() remote.Stats { return f.own().Stats() }

// Close makes later calls on the Fake's own connection fail with ErrClosed.
// It does not close Inner.
func (f *Fake) Close() error { return f.own().Close() }

func (f *Fake) own() *conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ownLocked()
}

func (f *Fake) ownLocked() *conn {
	if len(f.conns) == 0 {
		f.newConnLocked()
	}
	return f.conns[0]
}

func (f *Fake) newConnLocked() *conn {
	c := &conn{f: f, id: len(f.conns) + 1, gone: make(chan struct{})}
	f.conns = append(f.conns, c)
	return c
}

// matchLocked finds the rule answering a call with desc and counts the call for
// every rule it matches. It returns what to do: pass through when no rule
// applies.
func (f *Fake) matchLocked(desc string) action {
	var chosen *Rule
	for _, r := range f.rules {
		if !strings.Contains(desc, r.match) {
			continue
		}
		r.seen++
		if chosen == nil && (r.nth == 0 || r.seen == r.nth) && (r.limit < 0 || r.fired < r.limit) {
			chosen = r
			r.fired++
		}
	}
	if chosen == nil {
		return action{pass: true}
	}
	return chosen.act // a copy, so the call is not raced by later setters
}

// Rule says how the Fake answers the calls it matches. Its methods change
// it in place and return it, for chaining.
//
// When a rule fires, its Then function runs, then it waits (Delay, Hang),
// then it answers, in this order of precedence: LoseConnection, Err, the
// answer of Inner (Pass), the answer of Exit and Stdout (default: success
// with empty output). With Pass, LoseConnection and Err apply after the
// call went through Inner: the command ran but its answer never came.
type Rule struct {
	f     *Fake
	match string
	nth   int // 0: every matching call
	limit int // fires at most this often; -1: no limit
	seen  int // matching calls so far
	fired int
	act   action
}

// action is what a fired rule does; see Rule.
type action struct {
	then   func()
	delay  time.Duration
	hang   bool
	pass   bool
	lose   bool
	err    error
	code   int
	stderr string
	stdout []byte
}

func (r *Rule) set(fn func()) *Rule {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	fn()
	return r
}

// Nth makes the rule answer only the n-th call it matches (1-based). By
// default it answers every matching call.
func (r *Rule) Nth(n int) *Rule {
	if n < 1 {
		panic(fmt.Sprintf("remotetest: Nth(%d): calls count from 1", n))
	}
	return r.set(func() { r.nth = n })
}

// Times makes the rule answer at most n calls; after that it is spent and
// the calls go to the next rule that applies.
func (r *Rule) Times(n int) *Rule { return r.set(func() { r.limit = max(n, 0) }) }

// Exit answers as a command that exited with code and wrote stderr: with a
// *remote.ExitError when code is not 0 (for an upload, wrapped as the
// transports do).
func (r *Rule) Exit(code int, stderr string) *Rule {
	return r.set(func() { r.act.code, r.act.stderr = code, stderr })
}

// Stdout answers a run with this output, a ReadFile with this content.
// Uploads ignore it.
func (r *Rule) Stdout(b []byte) *Rule {
	b = bytes.Clone(b)
	return r.set(func() { r.act.stdout = b })
}

// LoseConnection fails the call with an error wrapping
// remote.ErrConnectionLost, and the connection stays lost: every later call
// on it fails the same way, and calls waiting in Delay or Hang on it end
// so. A new connection (Connect, a Dialer's next Dial) works again.
func (r *Rule) LoseConnection() *Rule { return r.set(func() { r.act.lose = true }) }

// Delay waits d before answering or passing the call through. If ctx ends
// first, the call fails with ctx.Err().
func (r *Rule) Delay(d time.Duration) *Rule { return r.set(func() { r.act.delay = d }) }

// Hang blocks the call until ctx ends, then fails it with ctx.Err(), as a
// command that never finishes.
func (r *Rule) Hang() *Rule { return r.set(func() { r.act.hang = true }) }

// Err fails the call with err as is.
func (r *Rule) Err(err error) *Rule { return r.set(func() { r.act.err = err }) }

// Then runs fn when the rule fires, before anything else, e.g. to cancel
// the call's context as Ctrl-C would (the call then fails with ctx.Err()),
// or to change the Fake's rules mid-run. fn runs outside the Fake's lock
// and may call it.
func (r *Rule) Then(fn func()) *Rule { return r.set(func() { r.act.then = fn }) }

// Pass sends the call on to Inner (when set) after Then and Delay, so a
// rule can add a side effect or a delay to the real run.
func (r *Rule) Pass() *Rule { return r.set(func() { r.act.pass = true }) }

// conn is one connection to a Fake: it has its own lost or closed state
// and session count.
type conn struct {
	f        *Fake
	id       int
	sessions atomic.Int64
	gone     chan struct{} // closed once lost or closed
	goneErr  error         // remote.ErrConnectionLost or ErrClosed, under f.mu
}

func (c *conn) Target() string { return c.f.Target() }

func (c *conn) Stats() remote.Stats {
	n := c.sessions.Load()
	return remote.Stats{Connections: 1, Sessions: n, RoundTrips: n}
}

func (c *conn) RunBatch(ctx context.Context, cmds []remote.Command) ([]remote.Result, []error) {
	c.f.mu.Lock()
	c.f.batches++
	ctx = context.WithValue(ctx, batchKey{}, c.f.batches)
	c.f.mu.Unlock()
	return remote.RunInTurn(ctx, c, cmds)
}

// batchKey is the context key of the number of the batch a call is part
// of (see Call.Batch).
type batchKey struct{}

func (c *conn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.endLocked(ErrClosed)
	return nil
}

// endLocked marks the connection lost or closed. Closing wins over
// losing, so the errors after Close say it was closed.
func (c *conn) endLocked(err error) {
	if c.goneErr == nil {
		close(c.gone)
	}
	if c.goneErr == nil || err == ErrClosed {
		c.goneErr = err
	}
}

func (c *conn) goneError() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	return c.goneErr
}

// begin records a call and decides what answers it. err is set, and no
// rule consulted, when the connection is gone or ctx is done, as the call
// would then never reach a host.
func (c *conn) begin(ctx context.Context, call Call) (n int, act action, inner remote.Runner, err error) {
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	call.Conn = c.id
	call.Batch, _ = ctx.Value(batchKey{}).(int)
	f.calls = append(f.calls, call)
	n = len(f.calls) - 1
	switch {
	case c.goneErr != nil:
		err = c.goneErr
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		c.sessions.Add(1)
		act = f.matchLocked(call.Desc)
		if act.pass {
			inner = f.Inner
		}
	}
	return n, act, inner, err
}

// finish records how call n ended.
func (c *conn) finish(n int, input []byte, err error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.calls[n].Stdin, c.f.calls[n].Err = input, err
}

// wait runs the fired rule's Then, Delay and Hang.
func (c *conn) wait(ctx context.Context, a action) error {
	if a.then != nil {
		a.then()
	}
	var timeout <-chan time.Time
	switch {
	case a.hang:
	case a.delay > 0:
		t := time.NewTimer(a.delay)
		defer t.Stop()
		timeout = t.C
	default:
		return ctx.Err() // Then may have cancelled it
	}
	select {
	case <-timeout:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.gone:
		return c.goneError()
	}
}

// failure is the error of a call that ended without an answer from the
// rules or Inner, worded like the transports' errors.
func (c *conn) failure(call Call, err error) error {
	if call.Kind == "upload" {
		return fmt.Errorf("upload %s to %s: %w", call.Path, c.Target(), err)
	}
	return fmt.Errorf("%s on %s: %w", call.Desc, c.Target(), err)
}

// outcome applies LoseConnection and Err once the call went through Inner
// or not; it returns nil when the call is to be answered normally.
func (c *conn) outcome(call Call, a action) error {
	switch {
	case a.lose:
		c.f.mu.Lock()
		c.endLocked(remote.ErrConnectionLost)
		c.f.mu.Unlock()
		return c.failure(call, remote.ErrConnectionLost)
	case a.err != nil:
		return a.err
	}
	return nil
}

func (c *conn) Run(ctx context.Context, cmd remote.Command) (res remote.Result, err error) {
	start := time.Now()
	call := Call{Kind: "run", Desc: describe(cmd), Script: cmd.Script}
	n, a, inner, err := c.begin(ctx, call)
	// Read the input whatever happens, so a caller's writer never blocks.
	input, rerr := readAll(ctx, cmd.Stdin, nil)
	defer func() { c.finish(n, input, err) }()
	if err == nil {
		err = rerr
	}
	if err == nil {
		err = c.wait(ctx, a)
	}
	if err != nil {
		return remote.Result{Duration: time.Since(start)}, c.failure(call, err)
	}
	if inner != nil {
		if cmd.Stdin != nil {
			cmd.Stdin = bytes.NewReader(input)
		}
		res, err = inner.Run(ctx, cmd)
	}
	if oerr := c.outcome(call, a); oerr != nil {
		return remote.Result{ExitCode: -1, Duration: time.Since(start)}, oerr
	}
	if inner != nil || a.pass {
		return res, err
	}
	res = remote.Result{Stdout: bytes.Clone(a.stdout), Stderr: []byte(a.stderr), ExitCode: a.code, Duration: time.Since(start)}
	if cmd.Stdout != nil && len(res.Stdout) > 0 {
		cmd.Stdout.Write(res.Stdout)
	}
	if cmd.Stderr != nil && len(res.Stderr) > 0 {
		cmd.Stderr.Write(res.Stderr)
	}
	if a.code != 0 {
		return res, &remote.ExitError{Target: c.Target(), Desc: call.Desc, Code: a.code, Stderr: a.stderr}
	}
	return res, nil
}

func (c *conn) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) (err error) {
	call := Call{Kind: "upload", Desc: "upload " + path, Path: path}
	n, a, inner, err := c.begin(ctx, call)
	// The Fake receives the data itself unless Inner will, and reports
	// progress only for data that reached the host.
	report := progress
	if err != nil || inner != nil {
		report = nil
	}
	data, rerr := readAll(ctx, r, report)
	defer func() { c.finish(n, data, err) }()
	if err == nil {
		err = rerr
	}
	if err == nil {
		err = c.wait(ctx, a)
	}
	if err != nil {
		return c.failure(call, err)
	}
	if inner != nil {
		err = inner.Upload(ctx, bytes.NewReader(data), path, progress)
	}
	if oerr := c.outcome(call, a); oerr != nil {
		return oerr
	}
	if inner != nil || a.pass || a.code == 0 {
		return err
	}
	return c.failure(call, &remote.ExitError{Target: c.Target(), Desc: "receive upload", Code: a.code, Stderr: a.stderr})
}

// Feed reads r to its end, reporting progress, then runs cmd with it on
// its input as Run does: the wait it returns does nothing, and fed returns
// how cmd went.
func (c *conn) Feed(ctx context.Context, cmd remote.Command, r io.Reader, progress func(n int)) (remote.Command, func() error, error) {
	data, err := readAll(ctx, r, progress)
	if err == nil {
		cmd.Stdin = bytes.NewReader(data)
		_, err = c.Run(ctx, cmd)
	}
	return remote.Script("wait for "+cmd.Desc, ":"), func() error { return err }, nil
}

func (c *conn) ReadFile(ctx context.Context, path string) (b []byte, err error) {
	call := Call{Kind: "read", Desc: "read " + path, Path: path}
	n, a, inner, err := c.begin(ctx, call)
	defer func() { c.finish(n, nil, err) }()
	if err == nil {
		err = c.wait(ctx, a)
	}
	if err != nil {
		return nil, c.failure(call, err)
	}
	if inner != nil {
		b, err = inner.ReadFile(ctx, path)
	}
	if oerr := c.outcome(call, a); oerr != nil {
		return nil, oerr
	}
	if inner != nil || a.pass {
		return b, err
	}
	if a.code != 0 {
		return nil, &remote.ExitError{Target: c.Target(), Desc: call.Desc, Code: a.code, Stderr: a.stderr}
	}
	return bytes.Clone(a.stdout), nil
}

// describe names a command as the rules see it: its Desc, or the first
// line of its script.
func describe(cmd remote.Command) string {
	if cmd.Desc != "" {
		return cmd.Desc
	}
	line, _, _ := strings.Cut(strings.TrimSpace(cmd.Script), "\n")
	return line
}

// readAll reads r to its end, or until ctx ends, reporting each chunk to
// progress when set. A nil r is empty.
func readAll(ctx context.Context, r io.Reader, progress func(int)) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	p := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return buf.Bytes(), err
		}
		n, err := r.Read(p)
		buf.Write(p[:n])
		if n > 0 && progress != nil {
			progress(n)
		}
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return buf.Bytes(), err
		}
	}
}
