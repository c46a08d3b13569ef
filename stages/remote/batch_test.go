package remote

import (
	"context"
	"errors"
	"testing"
)

// TestRunBatchStopsAtFirstFailure: the commands after a failing one do not
// run and are marked skipped; each command keeps its own output.
func TestRunBatchStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	results, errs := RunBatch(context.Background(), NewLocal(),
		Script("first", "echo one"),
		Script("second", "echo two; exit 3"),
		Script("third", "touch "+Quote(dir+"/ran")))
	if string(results[0].Stdout) != "one\n" || errs[0] != nil {
		t.Errorf("first: %q %v", results[0].Stdout, errs[0])
	}
	var ee *ExitError
	if !errors.As(errs[1], &ee) || ee.Code != 3 || string(results[1].Stdout) != "two\n" {
		t.Errorf("second: %q %v", results[1].Stdout, errs[1])
	}
	if !errors.Is(errs[2], ErrSkipped) {
		t.Errorf("third: %v, want skipped", errs[2])
	}
	if !errors.As(FirstError(errs), &ee) {
		t.Errorf("FirstError = %v", FirstError(errs))
	}
	if _, errs := RunBatch(context.Background(), NewLocal(), Script("ok", "true")); FirstError(errs) != nil {
		t.Errorf("a batch that succeeds: %v", errs)
	}
}
