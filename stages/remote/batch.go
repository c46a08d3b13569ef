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
)

// ErrSkipped is the error of a batched command that did not run because
// one before it in the batch failed.
var ErrSkipped = errors.New("skipped: an earlier command of its batch failed")

// Batcher is a Runner with a batch of its own, such as a test fake that
// answers each command by its rules.
type Batcher interface {
	// RunBatch runs cmds in order as RunBatch does.
	RunBatch(ctx context.Context, cmds []Command) ([]Result, []error)
}

// batchScript runs a batch's scripts on the target and frames their
// results; its header describes the framing.
//
//go:embed batch.sh
var batchScript string

// RunBatch runs cmds on r in order, in one round trip, stopping at the
// first that fails: its error is at its index, and every later command's
// is ErrSkipped. Each command keeps its own result, so each decoder reads
// only its own output, and each reads only its own stdin. Commands are
// sent as one program that runs each in a shell of its own; a Batcher
// runs the batch itself.
func RunBatch(ctx context.Context, r Runner, cmds ...Command) ([]Result, []error) {
	if b, ok := r.(Batcher); ok {
		return b.RunBatch(ctx, cmds)
	}
	results := make([]Result, len(cmds))
	errs := make([]error, len(cmds))
	if len(cmds) == 1 {
		results[0], errs[0] = r.Run(ctx, cmds[0])
		return results, errs
	}
	batch, err := batchCommand(cmds)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return results, errs
	}
	res, runErr := r.Run(ctx, batch)
	n := decodeBatch(r.Target(), cmds, res, results, errs)
	for i := n; i < len(cmds); i++ {
		// The batch ended before these reported: the connection was lost,
		// or the batch was stopped.
		errs[i] = runErr
		if errs[i] == nil {
			errs[i] = fmt.Errorf("%s on %s: the batch ended without its result", describe(cmds[i]), r.Target())
		}
	}
	return results, errs
}

// RunInTurn runs cmds on r as RunBatch does, but one round trip each: for
// Batchers that answer each command on its own, such as test fakes.
func RunInTurn(ctx context.Context, r Runner, cmds []Command) ([]Result, []error) {
	results := make([]Result, len(cmds))
	errs := make([]error, len(cmds))
	failed := false
	for i, c := range cmds {
		if failed {
			errs[i] = ErrSkipped
			continue
		}
		results[i], errs[i] = r.Run(ctx, c)
		failed = errs[i] != nil
	}
	return results, errs
}

// batchCommand is the one command that runs cmds as batch.sh does. The
// commands' inputs are read here, to tell batch.sh their lengths: a batch
// is for commands with small inputs (lists, state, environment files).
func batchCommand(cmds []Command) (Command, error) {
	descs := make([]string, len(cmds))
	lengths := make([]string, len(cmds))
	var stdin bytes.Buffer
	scripts := make([]string, len(cmds))
	for i, c := range cmds {
		descs[i], scripts[i], lengths[i] = describe(c), c.inline(), "-"
		if c.Stdin != nil {
			n, err := io.Copy(&stdin, c.Stdin)
			if err != nil {
				return Command{}, fmt.Errorf("%s: read its input: %w", descs[i], err)
			}
			lengths[i] = strconv.FormatInt(n, 10)
		}
	}
	args := append([]string{strings.Join(lengths, " ")}, scripts...)
	argv := append([]string{"/bin/sh", "-c", batchScript, "batch.sh"}, args...)
	// exec: the shell the runner starts becomes batch.sh, one process
	// fewer.
	batch := Command{Desc: strings.Join(descs, ", "), Script: "exec " + Join(argv...),
		Inline: "set -- " + Join(args...) + "\n" + batchScript, Public: true}
	for _, c := range cmds {
		batch.Public = batch.Public && c.Public
	}
	if stdin.Len() > 0 {
		batch.Stdin = &stdin
	}
	return batch, nil
}

// decodeBatch splits batch.sh's output into results and errs and returns
// how many commands reported.
func decodeBatch(target string, cmds []Command, res Result, results []Result, errs []error) int {
	out := bufio.NewReader(bytes.NewReader(res.Stdout))
	for i, c := range cmds {
		line, err := out.ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 5 || f[0] != "stagecoach-batch" || f[1] != strconv.Itoa(i+1) {
			return i
		}
		if f[2] == "skipped" {
			errs[i] = ErrSkipped
			continue
		}
		code, err1 := strconv.Atoi(f[2])
		olen, err2 := strconv.ParseInt(f[3], 10, 64)
		elen, err3 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || olen < 0 || elen < 0 {
			return i
		}
		var stdout, stderr bytes.Buffer
		if _, err := io.CopyN(&stdout, out, olen); err != nil {
			return i
		}
		if _, err := io.CopyN(&stderr, out, elen); err != nil {
			return i
		}
		results[i] = Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code, Duration: res.Duration}
		if code != 0 {
			errs[i] = &ExitError{Target: target, Desc: describe(c), Code: code, Stderr: stderr.String()}
		}
	}
	return len(cmds)
}

// FirstError is the error of the command that failed a batch, nil when
// every command succeeded.
func FirstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
