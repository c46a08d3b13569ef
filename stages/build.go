package stages

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

// errorTailLines is how much of a failed command's output its error shows.
const errorTailLines = 20

// runShell runs script with /bin/sh in dir, in a process group of its own
// that is killed as a whole when ctx is cancelled, so a build tool's
// children (node, go, esbuild) do not outlive an interrupted deploy.
func runShell(ctx context.Context, dir, script string, env []string, out io.Writer) error {
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

// tailBuffer keeps the last errorTailLines lines written to it.
type tailBuffer struct {
	lines   []string
	partial []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, strings.TrimRight(string(t.partial[:i]), "\r"))
		t.partial = t.partial[i+1:]
		if len(t.lines) > errorTailLines {
			t.lines = t.lines[len(t.lines)-errorTailLines:]
		}
	}
	return len(p), nil
}

// String is the kept output, the last unterminated line included.
func (t *tailBuffer) String() string {
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
		if len(lines) > errorTailLines {
			lines = lines[1:]
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// suffix formats the tail for an error message, secrets masked.
func (t *tailBuffer) suffix(log *ui.Logger) string {
	s := t.String()
	if s == "" {
		return ""
	}
	return ": " + log.Redact(s)
}
