package ship_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/ship"
)

// streamed prepares hosts and streams the archive of r to them as Deploy
// does, writing it again with write (nil: as Package did). A stream that
// blocks fails the test instead of hanging it.
func streamed(t *testing.T, r *pipeline.Run, hosts []*fleet.Host, write func(io.Writer) error) (writeErr, shipErr error) {
	t.Helper()
	ctx := context.Background()
	if err := ship.Prepare(ctx, r.Context, hosts, r.Packaged); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if write == nil {
		write = func(w io.Writer) error { return pack.Write(ctx, r.Packaged, r.Log, w) }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeErr, shipErr = ship.Stream(ctx, r.Context, hosts, r.Packaged, write, nil)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream blocked")
	}
	return writeErr, shipErr
}

// withBigFile commits a file of incompressible bytes, so the archive
// streams in many chunks and a host can fail in the middle.
func withBigFile(t *testing.T, e *runtest.Env) {
	t.Helper()
	b := make([]byte, 2<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(b)
	e.Write(t, "site/big.bin", string(b))
	e.Commit(t, "big")
}

// cutUpload is a transport whose uploads read limit bytes and stop, then
// fail with err or, when err is nil, claim success: a broken connection,
// or a transport that lost the end of its stream without noticing.
type cutUpload struct {
	remote.Runner
	limit int64
	err   error
}

func (c cutUpload) Upload(_ context.Context, r io.Reader, _ string, _ func(int)) error {
	io.CopyN(io.Discard, r, c.limit)
	return c.err
}

func TestStreamShipsToEveryHostWhileWriting(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	withBigFile(t, e)
	r := pipelinetest.Packaged(t, e)
	if err := os.Remove(r.Packaged.ArchivePath); err != nil {
		t.Fatal(err)
	}
	if werr, err := streamed(t, r, r.Hosts, nil); werr != nil || err != nil {
		t.Fatalf("write: %v; ship: %v\n%s", werr, err, e.Log)
	}
	for i := range e.Names {
		checkShipped(t, e, r, i)
		e.CheckCalls(t, i, 0, shippedCalls...)
	}
}

func TestStreamDropsHostWhoseUploadFails(t *testing.T) {
	tests := []struct {
		name string
		fail func(e *runtest.Env, h *fleet.Host)
		is   error
	}{{
		name: "connection lost at the end",
		fail: func(e *runtest.Env, _ *fleet.Host) { e.Fake(1).On("upload").LoseConnection() },
		is:   remote.ErrConnectionLost,
	}, {
		// The writer must go on feeding the other hosts rather than wait
		// for this one to read the rest.
		name: "upload stops reading midway",
		fail: func(_ *runtest.Env, h *fleet.Host) { h.Runner = cutUpload{h.Runner, 300 << 10, io.ErrUnexpectedEOF} },
		is:   io.ErrUnexpectedEOF,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{Hosts: 3})
			withBigFile(t, e)
			r := pipelinetest.Packaged(t, e)
			tt.fail(e, r.Hosts[1])
			werr, err := streamed(t, r, r.Hosts, nil)
			if werr != nil {
				t.Fatalf("write: %v", werr)
			}
			want := "ship " + r.Plan.Release + " to deploy@web2: "
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %q wrapping %v", err, want, tt.is)
			}
			if strings.Contains(err.Error(), "web1") || strings.Contains(err.Error(), "web3") {
				t.Errorf("error names a host that shipped: %v", err)
			}
			checkShipped(t, e, r, 0)
			checkShipped(t, e, r, 2)
			checkNotShipped(t, e, r, 1, false)
		})
	}
}

func TestStreamWriteFailureFailsEveryHost(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	r := pipelinetest.Packaged(t, e)
	// A transport that swallows the cut stream and says it got it all
	// must not make the host look shipped.
	r.Hosts[2].Runner = cutUpload{Runner: r.Hosts[2].Runner, limit: 10}
	broken := errors.New("local disk full")
	werr, err := streamed(t, r, r.Hosts, func(w io.Writer) error {
		w.Write([]byte("half an archive"))
		return broken
	})
	if werr != broken {
		t.Errorf("write error %v, want %v", werr, broken)
	}
	if !errors.Is(err, broken) {
		t.Errorf("ship error %v does not wrap the write's", err)
	}
	for _, want := range []string{"to deploy@web1: ", "to deploy@web2: ", "to deploy@web3: the archive was not written"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ship error %v, want it to say %q", err, want)
		}
	}
	for i := range e.Names {
		checkNotShipped(t, e, r, i, false)
	}
	// The third host's upload went to the cutting transport, not its fake.
	for i, want := range [][]string{{"prepare server", "upload"}, {"prepare server", "upload"}, {"prepare server"}} {
		e.CheckCalls(t, i, 0, want...)
	}
}

// More hosts than the environment ships to at once must not block the
// stream: the writer cannot wait for hosts that wait for it.
func TestStreamToMoreHostsThanParallel(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3, Environment: "    parallel: 1\n"})
	r := pipelinetest.Packaged(t, e)
	if werr, err := streamed(t, r, r.Hosts, nil); werr != nil || err != nil {
		t.Fatalf("write: %v; ship: %v\n%s", werr, err, e.Log)
	}
	for i := range e.Names {
		checkShipped(t, e, r, i)
	}
}

// Deploy streams to the first Parallel hosts and ships the written
// archive to the others with To: both get the same bytes.
func TestStreamThenToTheRest(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3, Environment: "    parallel: 1\n"})
	r := pipelinetest.Packaged(t, e)
	if werr, err := streamed(t, r, r.Hosts[:1], nil); werr != nil || err != nil {
		t.Fatalf("write: %v; ship: %v\n%s", werr, err, e.Log)
	}
	err := r.Fleet.Each(context.Background(), r.Hosts[1:], "ship", func(ctx context.Context, h *fleet.Host) error {
		return ship.To(ctx, h, r.Packaged, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range e.Names {
		checkShipped(t, e, r, i)
	}
}

func TestPrepareRefusesHostWithoutRoom(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 2})
	r := pipelinetest.Packaged(t, e)
	e.Fake(1).On("prepare server").Stdout(dfOutput(0))
	err := ship.Prepare(context.Background(), r.Context, r.Hosts, r.Packaged)
	want := "ship " + r.Plan.Release + " to deploy@web2: disk full on deploy@web2 at " + e.Roots[1]
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "web1") {
		t.Errorf("error %v, want only %q", err, want)
	}
	if n := e.Fake(0).Count("prepare server"); n != 1 {
		t.Errorf("the other host was prepared %d times", n)
	}
}
