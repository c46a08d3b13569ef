package remotetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
)

func TestDialerReconnect(t *testing.T) {
	ctx := context.Background()
	web1 := remotetest.New("web1", nil)
	web1.On("swap").LoseConnection()
	d := remotetest.NewDialer(web1)

	r, err := d.Dial(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if r != remote.Runner(web1) {
		t.Error("the first dial did not return the host's Fake")
	}
	if err := do(ctx, r, "run swap"); outcome(err) != "lost" {
		t.Fatalf("swap: %v", err)
	}
	// Reconnect as fleet.Reconnect does: dial anew, then close the old one.
	fresh, err := d.Dial(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := do(ctx, fresh, "run record deploy"); err != nil {
		t.Errorf("record over the new connection: %v", err)
	}
	if err := do(ctx, r, "run x"); outcome(err) != "closed" {
		t.Errorf("old connection after Close: %v", err)
	}
	calls := web1.Calls()
	if len(calls) != 3 || calls[1].Desc != "record deploy" || calls[1].Conn != 2 {
		t.Errorf("calls %+v, want the record over connection 2", calls)
	}
	if n := d.Dials("web1"); n != 2 {
		t.Errorf("Dials(web1) = %d, want 2", n)
	}
}

func TestDialerFail(t *testing.T) {
	ctx := context.Background()
	unreachable := errors.New("connect to web2: no route to host")
	var d remotetest.Dialer // the zero Dialer works
	d.Fail("web2", unreachable)
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
		host string
		want error
	}{
		{"failing host", func() context.Context { return ctx }, "web2", unreachable},
		{"other host", func() context.Context { return ctx }, "web1", nil},
		{"done context", func() context.Context {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx
		}, "web1", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := d.Dial(tc.ctx(), tc.host)
			if !errors.Is(err, tc.want) || (err == nil) != (r != nil) {
				t.Fatalf("Dial = %v, %v; want error %v", r, err, tc.want)
			}
		})
	}
	if n := d.Dials("web2"); n != 1 {
		t.Errorf("Dials(web2) = %d, want 1 (failed dials count)", n)
	}
	d.Fail("web2", nil)
	if _, err := d.Dial(ctx, "web2"); err != nil {
		t.Errorf("after Fail(web2, nil): %v", err)
	}
}

func TestDialerCreatesHosts(t *testing.T) {
	inner := remotetest.New("inner", nil)
	d := &remotetest.Dialer{Inner: inner}
	d.Host("web3").On("check").Exit(1, "")
	r, err := d.Dial(context.Background(), "web3")
	if err != nil {
		t.Fatal(err)
	}
	if r.Target() != "web3" || d.Host("web3") != r {
		t.Errorf("dialled %q, not the host set up", r.Target())
	}
	if err := do(context.Background(), r, "run check"); outcome(err) != "exit 1" {
		t.Errorf("rule set before dialling: %v", err)
	}
	if err := do(context.Background(), r, "run other"); err != nil || inner.Count("other") != 1 {
		t.Errorf("unanswered call did not reach the Dialer's Inner: %v", err)
	}
}
