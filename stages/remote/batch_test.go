package remote

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestRunBatchStopsAtFirstFailure: the commands after a failing one do not
// run and are marked skipped; each command keeps its own output.
func TestRunBatchStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	r := NewLocal()
	results, errs := RunBatch(context.Background(), r,
		Script("first", "echo one; echo warn >&2"),
		Script("second", "printf two; exit 3"),
		Script("third", "touch "+Quote(dir+"/ran")))
	if string(results[0].Stdout) != "one\n" || string(results[0].Stderr) != "warn\n" || errs[0] != nil {
		t.Errorf("first: %q %q %v", results[0].Stdout, results[0].Stderr, errs[0])
	}
	var ee *ExitError
	if !errors.As(errs[1], &ee) || ee.Code != 3 || ee.Desc != "second" || string(results[1].Stdout) != "two" {
		t.Errorf("second: %q %v", results[1].Stdout, errs[1])
	}
	if !errors.Is(errs[2], ErrSkipped) {
		t.Errorf("third: %v, want skipped", errs[2])
	}
	if _, err := os.Stat(dir + "/ran"); !os.IsNotExist(err) {
		t.Error("the command after the failing one ran")
	}
	if !errors.As(FirstError(errs), &ee) {
		t.Errorf("FirstError = %v", FirstError(errs))
	}
	if st := r.Stats(); st.RoundTrips != 1 {
		t.Errorf("%d round trips for one batch", st.RoundTrips)
	}
}

// TestRunBatchOutputAndStdin: output of any bytes, without a final
// newline or looking like the framing, comes back exactly, and the one
// command that reads stdin gets it.
func TestRunBatchOutputAndStdin(t *testing.T) {
	binary := make([]byte, 3000)
	for i := range binary {
		binary[i] = byte(i)
	}
	feed := Script("stdin", "cat")
	feed.Stdin = bytes.NewReader(binary)
	results, errs := RunBatch(context.Background(), NewLocal(),
		Script("framing", `printf 'stagecoach-batch 2 0 0 0\nno newline'`),
		feed,
		Script("no stdin", "cat; echo done"))
	if err := FirstError(errs); err != nil {
		t.Fatal(err)
	}
	if got := string(results[0].Stdout); got != "stagecoach-batch 2 0 0 0\nno newline" {
		t.Errorf("framing-like output: %q", got)
	}
	if !bytes.Equal(results[1].Stdout, binary) {
		t.Errorf("stdin came back as %d bytes, want %d", len(results[1].Stdout), len(binary))
	}
	if got := string(results[2].Stdout); got != "done\n" {
		t.Errorf("a command without stdin read %q", got)
	}
}

// TestRunBatchStdins: each command reads its own input and no more, also
// after a command that reads nothing or an empty input.
func TestRunBatchStdins(t *testing.T) {
	in := func(name, data string) Command {
		c := Script(name, "cat; echo .")
		c.Stdin = strings.NewReader(data)
		return c
	}
	results, errs := RunBatch(context.Background(), NewLocal(),
		in("a", "first\n"), Script("none", "cat; echo none"), in("empty", ""), in("b", strings.Repeat("x", 100000)))
	if err := FirstError(errs); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"first\n.\n", "none\n", ".\n", strings.Repeat("x", 100000) + ".\n"} {
		if got := string(results[i].Stdout); got != want {
			t.Errorf("command %d read %d bytes, want %d", i, len(got), len(want))
		}
	}
}

// TestRunBatchLost: commands whose results never came get the batch's
// error.
func TestRunBatchLost(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs := RunBatch(ctx, NewLocal(), Script("a", "true"), Script("b", "true"))
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("command %d: %v, want the cancellation", i, err)
		}
	}
}

// batcher is a Batcher that records the batch it was given.
type batcher struct {
	Runner
	got []Command
}

func (b *batcher) RunBatch(ctx context.Context, cmds []Command) ([]Result, []error) {
	b.got = cmds
	return make([]Result, len(cmds)), make([]error, len(cmds))
}

func TestRunBatchBatcher(t *testing.T) {
	b := &batcher{Runner: NewLocal()}
	RunBatch(context.Background(), b, Script("a", "true"), Script("b", "true"))
	if len(b.got) != 2 || b.got[1].Desc != "b" {
		t.Errorf("the Batcher got %v", b.got)
	}
}

// TestRunBatchScriptsRunAsShC: each script runs as sh -c would run it,
// though in a subshell of the batch: no positional parameters, options
// of its own, its exit, exec, traps and syntax errors its own, and more
// than nine scripts keep their order and outputs.
func TestRunBatchScriptsRunAsShC(t *testing.T) {
	cmds := []Command{
		Script("args", `echo "[$#] [${1-unset}]"`),
		Script("unset", `echo "[${nothing}]"`),
		Script("trap", `trap 'echo bye' EXIT; echo hi`),
		Script("exec", `exec echo execed`),
		Script("exit in a function", `f() { exit 0; }; f; echo not reached`),
		Script("set -e", `set -e; false; echo not reached`),
		Script("syntax", `if then`),
	}
	results, errs := RunBatch(context.Background(), NewLocal(), cmds...)
	want := []string{"[0] [unset]\n", "[]\n", "hi\nbye\n", "execed\n", ""}
	for i, w := range want {
		if errs[i] != nil || string(results[i].Stdout) != w {
			t.Errorf("%s: %q, %v; want %q", cmds[i].Desc, results[i].Stdout, errs[i], w)
		}
	}
	var ee *ExitError
	if !errors.As(errs[5], &ee) || ee.Code != 1 || len(results[5].Stdout) != 0 {
		t.Errorf("set -e: %q, %v; want exit 1 and no output", results[5].Stdout, errs[5])
	}
	if !errors.Is(errs[6], ErrSkipped) {
		t.Errorf("after the failure: %v, want skipped", errs[6])
	}

	many := make([]Command, 12)
	for i := range many {
		many[i] = Script("n", "printf '%s' '"+strings.Repeat("x", i)+"'; printf e >&2")
	}
	many[4] = Script("silent", ":")
	results, errs = RunBatch(context.Background(), NewLocal(), many...)
	for i := range many {
		wantOut, wantErr := strings.Repeat("x", i), "e"
		if i == 4 {
			wantOut, wantErr = "", ""
		}
		if errs[i] != nil || string(results[i].Stdout) != wantOut || string(results[i].Stderr) != wantErr {
			t.Errorf("script %d: %q %q %v", i+1, results[i].Stdout, results[i].Stderr, errs[i])
		}
	}
	syntax, serr := RunBatch(context.Background(), NewLocal(), Script("syntax", "if then"))
	if !errors.As(serr[0], &ee) || ee.Code != 2 || len(syntax[0].Stderr) == 0 {
		t.Errorf("syntax error: %v, stderr %q; want exit 2 and a message", serr[0], syntax[0].Stderr)
	}
}
