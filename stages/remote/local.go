package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Local runs operations on this machine with the same semantics as SSH, so
// a "local" target deploys through the same Command values.
type Local struct {
	sessions atomic.Int64
}

var _ Runner = (*Local)(nil)

// NewLocal returns a runner for this machine.
func NewLocal() *Local { return &Local{} }

// Target is "local".
func (l *Local) Target() string { return LocalTarget }

// Stats counts every operation as a session and a round trip; a local
// runner opens no connections.
func (l *Local) Stats() Stats {
	n := l.sessions.Load()
	return Stats{Sessions: n, RoundTrips: n}
}

// Close does nothing: there is no connection.
func (l *Local) Close() error { return nil }

// Run executes cmd.Script with /bin/sh. Cancelling ctx kills the script's
// whole process group, as closing an SSH session does.
func (l *Local) Run(ctx context.Context, cmd Command) (Result, error) {
	l.sessions.Add(1)
	start := time.Now()
	desc := describe(cmd)
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd.Script)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		// Signal the group so children of the script die too; TERM first
		// like the SSH transport, KILL if it lingers.
		pid := c.Process.Pid
		err := syscall.Kill(-pid, syscall.SIGTERM)
		time.AfterFunc(closeGrace, func() { syscall.Kill(-pid, syscall.SIGKILL) })
		return err
	}
	// Bound the wait for output pipes held open by leftover grandchildren.
	c.WaitDelay = closeGrace
	var stdout, stderr bytes.Buffer
	var mu sync.Mutex
	c.Stdout = tee(&stdout, cmd.Stdout, &mu)
	c.Stderr = tee(&stderr, cmd.Stderr, &mu)
	c.Stdin = cmd.Stdin
	err := c.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	if ctx.Err() != nil && err != nil {
		return res, fmt.Errorf("%s on %s: %w", desc, LocalTarget, ctx.Err())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
		stderr := string(res.Stderr)
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Same convention as SSH: 128 + signal number.
			res.ExitCode = 128 + int(ws.Signal())
			stderr += "\nkilled by signal " + ws.Signal().String()
		}
		return res, &ExitError{Target: LocalTarget, Desc: desc, Code: res.ExitCode, Stderr: stderr}
	default:
		res.ExitCode = -1
		return res, fmt.Errorf("%s on %s: %w", desc, LocalTarget, err)
	}
}

// ReadFile reads path on this machine.
func (l *Local) ReadFile(ctx context.Context, path string) ([]byte, error) {
	l.sessions.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", path, LocalTarget, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", path, LocalTarget, err)
	}
	return b, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Upload writes r to a temporary file beside path and renames it into place
// once complete.
func (l *Local) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) (err error) {
	l.sessions.Add(1)
	fail := func(err error) error { return fmt.Errorf("upload %s to %s: %w", path, LocalTarget, err) }
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fail(fmt.Errorf("directory %s does not exist (create it before uploading)", dir))
	}
	tmp := partialName(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, &countingReader{r: ctxReader{ctx, r}, progress: progress}); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return nil
}
