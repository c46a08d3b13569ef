package e2e

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestConnectionKilledDuringShip kills the host's SSH connection (its
// sshd processes, as a crash or a network cut would) after the first
// megabyte of the archive went out: the deploy fails plainly, nothing is
// left where a finished upload would be, current is untouched, the lock
// is released all the same and the next deploy succeeds.
func TestConnectionKilledDuringShip(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Dropped Connection Guest")
	addImage(t, p, "photo.jpg", 4<<20, 1)

	r, out := openRun(t, p, pipeline.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Detect connects without locking; the deploy then runs on the same
	// connection, wrapped to cut it mid-upload.
	if err := r.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	killer := &killingRunner{Runner: r.Hosts[0].Runner, after: 1 << 20, kill: host.KillConnections}
	r.Hosts[0].Runner = killer
	err := r.Deploy(ctx)
	if !killer.killed() {
		t.Fatalf("the archive upload never reached 1 MiB: %v\n%s", err, out.String())
	}
	if err == nil {
		t.Fatalf("the deploy survived its connection being killed\n%s", out.String())
	}
	t.Logf("deploy failed: %v", err)
	if !strings.Contains(err.Error(), "ship") || !strings.Contains(err.Error(), "upload") {
		t.Errorf("error does not say the upload failed: %v", err)
	}

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	l := server.Layout{Root: p.Root}
	mustNotExist(t, l.IncomingPath(r.Plan.Release))
	if entries, _ := os.ReadDir(l.IncomingDir()); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Logf("left in incoming/ for cleanup: %s", strings.Join(names, ", "))
	}
	mustNotExist(t, lockDir(p.Root))
	if !strings.Contains(out.String(), "reconnected after the connection was lost") {
		t.Errorf("the log does not say the deploy reconnected to record its failure and release its lock:\n%s", out.String())
	}
	if last := state(t, p.Root).Deploys; len(last) == 0 || last[len(last)-1].Result != server.ResultFailed || last[len(last)-1].Stage != "ship" {
		t.Errorf("the server's history does not record the failed ship: %+v", last)
	}
	mustHaveReservations(t, p, p.Root, guest)

	next := mustDeploy(t, p)
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release || got == id1 {
		t.Errorf("current is %s after the next deploy", got)
	}
	mustHaveReservations(t, p, p.Root, guest)
}

// killingRunner runs kill once the archive upload has read after bytes.
type killingRunner struct {
	remote.Runner
	after int64
	kill  func()
	once  sync.Once
	done  bool
	mu    sync.Mutex
}

func (k *killingRunner) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) error {
	if strings.HasSuffix(path, ".archive") {
		r = &killAfter{r: r, left: k.after, kill: k.fire}
	}
	return k.Runner.Upload(ctx, r, path, progress)
}

func (k *killingRunner) fire() {
	k.once.Do(func() {
		k.kill()
		k.mu.Lock()
		k.done = true
		k.mu.Unlock()
		// Let the reset reach the client before more data is written.
		time.Sleep(200 * time.Millisecond)
	})
}

func (k *killingRunner) killed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.done
}

type killAfter struct {
	r    io.Reader
	left int64
	kill func()
}

func (k *killAfter) Read(p []byte) (int, error) {
	if k.left <= 0 {
		k.kill()
	}
	n, err := k.r.Read(p)
	k.left -= int64(n)
	return n, err
}
