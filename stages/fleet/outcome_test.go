package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stagecoach/stagecoach/stages/server"
)

func TestResults(t *testing.T) {
	boom := errors.New("boom")
	type host struct {
		switched, back, restored bool
		err, rollbackErr         error
	}
	tests := []struct {
		name  string
		fleet string
		hosts []host
		want  []string
	}{
		{"all live", server.ResultSuccess, []host{{switched: true}, {switched: true}},
			[]string{server.ResultSuccess, server.ResultSuccess}},
		{"no change", server.ResultNoChange, []host{{}, {}}, []string{server.ResultNoChange, server.ResultNoChange}},
		{"one failed to stage", server.ResultFailed, []host{{}, {err: boom}, {}},
			[]string{server.ResultAborted, server.ResultFailed, server.ResultAborted}},
		{"the build failed: no host did", server.ResultFailed, []host{{}, {}}, []string{server.ResultFailed, server.ResultFailed}},
		{"one rollback failed", server.ResultRollbackFailed,
			[]host{{back: true}, {switched: true, err: boom, rollbackErr: boom}, {back: true}},
			[]string{server.ResultRolledBack, server.ResultRollbackFailed, server.ResultRolledBack}},
		{"health failed on one, all went back", server.ResultRolledBack,
			[]host{{back: true, err: boom}, {back: true}},
			[]string{server.ResultRolledBack, server.ResultRolledBack}},
		{"a migration failed and was restored", server.ResultRolledBack,
			[]host{{back: true}, {restored: true, err: boom}},
			[]string{server.ResultRolledBack, server.ResultFailed}},
		{"restored on another's failure", server.ResultRolledBack, []host{{restored: true}, {err: boom}},
			[]string{server.ResultRolledBack, server.ResultFailed}},
		{"stopped: switched hosts stay", server.ResultFailed, []host{{switched: true}, {err: boom}, {}},
			[]string{server.ResultSuccess, server.ResultFailed, server.ResultAborted}},
		{"interrupted", server.ResultInterrupted, []host{{err: fmt.Errorf("ship: %w", context.Canceled)}, {}},
			[]string{server.ResultInterrupted, server.ResultInterrupted}},
	}
	for _, tc := range tests {
		var hosts []*Host
		for _, h := range tc.hosts {
			fh := &Host{Switched: h.switched, SwitchedBack: h.back, restored: h.restored, RollbackErr: h.rollbackErr}
			fh.out.err = h.err
			hosts = append(hosts, fh)
		}
		if got := Results(hosts, tc.fleet); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Results = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPhaseIsTheFurthestReached(t *testing.T) {
	h := &Host{}
	if p := h.Phase(); p != PhaseNone {
		t.Errorf("phase %q before anything", p)
	}
	h.State = &server.State{}
	h.Shipped, h.Staged = true, true
	h.note(true, nil)
	h.Staged = false // discarded
	if p := h.Phase(); p != PhaseStage {
		t.Errorf("phase %q after a discard, want %q", p, PhaseStage)
	}
	h.Switched = true
	h.note(false, nil)
	h.Switched, h.SwitchedBack = false, true
	if p := h.Phase(); p != PhaseActivate {
		t.Errorf("phase %q after a rollback, want %q", p, PhaseActivate)
	}
}
