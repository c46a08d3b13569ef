package remote

import (
	"context"
	"errors"
)

// ErrSkipped is the error of a batched command that did not run because
// one before it in the batch failed.
var ErrSkipped = errors.New("skipped: an earlier command of its batch failed")

// Batcher is a Runner that can send several commands in one round trip.
type Batcher interface {
	// RunBatch runs cmds in order as RunBatch does.
	RunBatch(ctx context.Context, cmds []Command) ([]Result, []error)
}

// RunBatch runs cmds on r in order, stopping at the first that fails: its
// error is at its index, and every later command's is ErrSkipped. The
// commands are sent in one round trip when r is a Batcher, else one after
// another. Each command keeps its own result, so each decoder reads only
// its own output.
func RunBatch(ctx context.Context, r Runner, cmds ...Command) ([]Result, []error) {
	if b, ok := r.(Batcher); ok {
		return b.RunBatch(ctx, cmds)
	}
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
