package remote_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
)

func TestIsConnectionLost(t *testing.T) {
	lost := fmt.Errorf("deploy on web1: %w: EOF", remote.ErrConnectionLost)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"sentinel", remote.ErrConnectionLost, true},
		{"wrapped", fmt.Errorf("step: %w", lost), true},
		{"joined with another failure", errors.Join(errors.New("cleanup failed"), lost), true},
		{"exit status", &remote.ExitError{Target: "web1", Desc: "deploy", Code: 1}, false},
		{"cancelled", fmt.Errorf("deploy on web1: %w", context.Canceled), false},
		{"deadline", fmt.Errorf("deploy on web1: %w", context.DeadlineExceeded), false},
		{"lost while cancelled", errors.Join(lost, context.Canceled), false},
		{"same text, other error", errors.New("connection lost"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := remote.IsConnectionLost(tc.err); got != tc.want {
				t.Errorf("IsConnectionLost(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
