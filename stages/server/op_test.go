package server

import (
	"errors"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestOpDecode: each op turns its script's own exit codes into its typed
// error, and passes other failures through untouched.
func TestOpDecode(t *testing.T) {
	l := Layout{Root: "/srv/app"}
	stage := mustCmd(StageRelease(l, StageSpec{ID: id1}))
	verify := mustCmd(VerifyRelease(l, id1, VerifySpec{}))
	lock := mustCmd(Lock(l, LockInfo{Holder: "alice@laptop", Token: "t"}))
	held := "stagecoach-lock now=100 heartbeat=90\n" + `{"holder":"bob@ci","pid":7}`
	exit := func(code int) error { return &remote.ExitError{Target: "web1", Desc: "op", Code: code, Stderr: "boom"} }
	lost := remote.ErrConnectionLost
	for _, tc := range []struct {
		name   string
		decode func(remote.Result, error) error
		stdout string
		err    error
		check  func(error) bool
	}{
		{"stage tree mismatch", drop(stage.Decode), "modified web/a.js\nmissing web/b.css\n", exit(ExitTreeMismatch), func(err error) bool {
			var e *TreeMismatchError
			return errors.As(err, &e) && e.Release == id1 && len(e.Report.Modified) == 1 && len(e.Report.Missing) == 1
		}},
		{"stage unsafe archive", drop(stage.Decode), "", exit(ExitUnsafeArchive), func(err error) bool {
			var e *UnsafeArchiveError
			var ee *remote.ExitError
			return errors.As(err, &e) && errors.As(err, &ee) && ee.Stderr == "boom"
		}},
		{"stage other failure", drop(stage.Decode), "", exit(1), func(err error) bool {
			var e *remote.ExitError
			return errors.As(err, &e) && e.Code == 1
		}},
		{"stage connection lost", drop(stage.Decode), "", lost, func(err error) bool { return errors.Is(err, lost) }},
		{"verify tree mismatch", drop(verify.Decode), "extra x\n", exit(ExitTreeMismatch), func(err error) bool {
			var e *TreeMismatchError
			return errors.As(err, &e) && len(e.Report.Extra) == 1
		}},
		{"lock held", drop(lock.Decode), held, exit(ExitLockHeld), func(err error) bool {
			var e *LockHeldError
			return errors.As(err, &e) && e.Held.Info.Holder == "bob@ci" && e.Held.Age == 10*time.Second &&
				e.Error() == e.Held.Describe(0)
		}},
		{"lock held, holder unreadable", drop(lock.Decode), "garbage", exit(ExitLockHeld), func(err error) bool {
			var e *LockHeldError
			return err != nil && !errors.As(err, &e)
		}},
		{"lock free", drop(lock.Decode), "", nil, func(err error) bool { return err == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(remote.Result{Stdout: []byte(tc.stdout)}, tc.err)
			if !tc.check(err) {
				t.Errorf("decoded %T %v", err, err)
			}
		})
	}
}

// TestOpValues: ops with a value decode it from stdout, and report output
// they cannot read.
func TestOpValues(t *testing.T) {
	l := Layout{Root: "/srv/app"}
	df := "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 40 60 40% /\n"
	if u, err := DiskFree(l).Decode(remote.Result{Stdout: []byte(df)}, nil); err != nil || u.AvailKB != 60 {
		t.Errorf("disk free %+v %v", u, err)
	}
	if _, err := Prepare(l).Decode(remote.Result{Stdout: []byte("nonsense")}, nil); err == nil {
		t.Error("unreadable df output accepted")
	}
	if cur, err := ReadCurrent(l).Decode(remote.Result{Stdout: []byte("releases/" + id1 + "\n")}, nil); err != nil || cur != id1 {
		t.Errorf("current %q %v", cur, err)
	}
	if st, err := ReadLock(l).Decode(remote.Result{Stdout: []byte("stagecoach-lock free\n")}, nil); err != nil || st.Held {
		t.Errorf("lock %+v %v", st, err)
	}
	cleanup := mustCmd(Cleanup(l, CleanupSpec{Keep: 2}))
	rep, err := cleanup.Decode(remote.Result{Stdout: []byte("before free_kb=1\nremoved " + id1 + "\nafter free_kb=3\n")}, nil)
	if err != nil || len(rep.Removed) != 1 || rep.FreeAfterKB != 3 {
		t.Errorf("cleanup %+v %v", rep, err)
	}
	if _, err := ReadLive(l).Decode(remote.Result{Stdout: []byte("no separators")}, nil); err == nil {
		t.Error("unreadable live report accepted")
	}
}

// drop keeps a decoder's error only.
func drop[T any](decode func(remote.Result, error) (T, error)) func(remote.Result, error) error {
	return func(res remote.Result, err error) error {
		_, err = decode(res, err)
		return err
	}
}
