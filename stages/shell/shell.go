// Package shell runs shell commands on the deploying machine: builds,
// migration detection, plugin builds.
package shell

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/stagecoach/stagecoach/stages/ui"
)

// TailLines is how much of a failed command's output its error shows.
const TailLines = 20

// Run runs script with /bin/sh in dir, in a process group of its own
// that is killed as a whole when ctx is cancelled, so a build tool's
// children (node, go, esbuild) do not outlive an interrupted deploy.
func Run(ctx context.Context, dir, script string, env []string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Grandchildren holding the output pipe open must not hang Wait.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%q interrupted: %w", script, ctx.Err())
	}
	return err
}

// Tail keeps the last TailLines lines written to it, for the error of a
// command whose output went to the log.
type Tail struct {
	lines   []string
	partial []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, strings.TrimRight(string(t.partial[:i]), "\r"))
		t.partial = t.partial[i+1:]
		if len(t.lines) > TailLines {
			t.lines = t.lines[len(t.lines)-TailLines:]
		}
	}
	return len(p), nil
}

// String is the kept output, the last unterminated line included.
func (t *Tail) String() string {
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
		if len(lines) > TailLines {
			lines = lines[1:]
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// Suffix formats the tail for an error message, secrets masked.
func (t *Tail) Suffix(log *ui.Logger) string {
	s := t.String()
	if s == "" {
		return ""
	}
	return ": " + log.Redact(s)
}
