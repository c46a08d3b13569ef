package ship_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ship"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// stageThen stages the release in the ship's last round trip, as Deploy
// does.
func stageThen(r *pipeline.Run) ship.Then {
	return func(h *fleet.Host, p *run.Packaged) ([]remote.Command, func([]remote.Result, []error) error, error) {
		return swap.StageBatch(r.Context, h, p.Manifest)
	}
}

// fedCalls is what a host is asked for when the archive it unpacked on
// arrival staged (see runtest.Env.CallsSince), up to the furnishing.
func fedCalls(id string) []string {
	return []string{"prepare server", "unpack release " + id + " as it arrives", "wait for unpack release " + id + " as it arrives",
		"write release metadata", "stage release " + id}
}

// checkStaged fails unless host i staged the release of r, with nothing
// of its archive left in incoming/.
func checkStaged(t *testing.T, e *runtest.Env, r *pipeline.Run, i int) {
	t.Helper()
	h, id := r.Hosts[i], r.Plan.Release
	if !h.Shipped || !h.StagedWithShip || h.StageErr != nil {
		t.Fatalf("host %d: shipped %v, staged with the ship %v, %v\n%s", i, h.Shipped, h.StagedWithShip, h.StageErr, e.Log)
	}
	l := server.Layout{Root: e.Roots[i]}
	if !runtest.Exists(t, l.ReleaseDir(id)) {
		t.Errorf("host %d: no releases/%s", i, id)
	}
	if left := dirNames(t, l.IncomingDir()); len(left) != 0 {
		t.Errorf("host %d: incoming/ holds %v", i, left)
	}
}

// TestToFeedsTheUnpacking: with staging to follow, the host unpacks the
// archive as it arrives and keeps no copy of it; the batch after the feed
// waits for the unpacking, and staging takes what it unpacked.
func TestToFeedsTheUnpacking(t *testing.T) {
	e := runtest.New(t, runtest.Options{})
	r := pipelinetest.Packaged(t, e)
	if err := ship.To(context.Background(), r.Hosts[0], r.Packaged, stageThen(r)); err != nil {
		t.Fatalf("ship: %v\n%s", err, e.Log)
	}
	checkStaged(t, e, r, 0)
	if got, want := e.CallsSince(0, 0), fedCalls(r.Plan.Release); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("host was asked for %q, want %q first", got, want)
	}
	if h := r.Hosts[0]; h.BytesSent <= r.Packaged.Manifest.Archive.Size {
		t.Errorf("%d bytes sent for an archive of %d", h.BytesSent, r.Packaged.Manifest.Archive.Size)
	}
}

// TestToSendsTheArchiveAgain: when staging finds the unpacking on arrival
// incomplete or the tree not matching, the archive is uploaded and staged
// from the file, whose SHA-256 check tells a corrupt archive; a full disk
// is reported as it is, with no second upload.
func TestToSendsTheArchiveAgain(t *testing.T) {
	tests := []struct {
		name     string
		fake     func(f *remotetest.Fake, id string)
		change   func(t *testing.T, p *run.Packaged)
		resent   bool   // the archive was uploaded after the feed
		shipErr  string // in ship's error, when it fails
		stageErr string // in the staging's error, when it fails
	}{{
		name: "the unpacking never ran",
		// The host answers the feed without unpacking anything.
		fake:   func(f *remotetest.Fake, id string) { f.On("as it arrives").Exit(0, "") },
		resent: true,
	}, {
		name: "the unpacked tree does not match",
		fake: func(f *remotetest.Fake, id string) {
			f.On("stage release").Nth(1).Exit(server.ExitTreeMismatch, "").Stdout([]byte("modified site/index.html\n"))
		},
		resent: true,
	}, {
		name: "the archive is corrupt",
		change: func(t *testing.T, p *run.Packaged) {
			b, err := os.ReadFile(p.ArchivePath)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(b) / 3; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(p.ArchivePath, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		resent:  true,
		shipErr: "is corrupt or was tampered with in transit",
	}, {
		name: "the disk fills while unpacking",
		fake: func(f *remotetest.Fake, id string) {
			f.On("stage release").Exit(server.ExitNotUnpacked, "tar: ./site/index.html: Cannot write: No space left on device\n")
		},
		stageErr: "disk full on deploy@web1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{})
			r := pipelinetest.Packaged(t, e)
			id := r.Plan.Release
			if tt.fake != nil {
				tt.fake(e.Fake(0), id)
			}
			if tt.change != nil {
				tt.change(t, r.Packaged)
			}
			err := ship.To(context.Background(), r.Hosts[0], r.Packaged, stageThen(r))
			calls := e.CallsSince(0, 0)
			if got, want := slices.Contains(calls, "upload"), tt.resent; got != want {
				t.Errorf("archive uploaded after the feed: %v, want %v; calls %q", got, want, calls)
			}
			if tt.resent && !strings.Contains(e.Log.String(), "uploading its archive, to check it whole") {
				t.Errorf("the second upload is not told:\n%s", e.Log)
			}
			h := r.Hosts[0]
			switch {
			case tt.shipErr != "":
				var corrupt *server.ArchiveMismatchError
				if err == nil || !strings.Contains(err.Error(), tt.shipErr) || !errors.As(err, &corrupt) {
					t.Fatalf("error %v, want it to say %q", err, tt.shipErr)
				}
				if !slices.Contains(calls, "remove corrupt upload") || slices.Contains(calls, "write release metadata") && h.Shipped {
					t.Errorf("calls %q: want the corrupt upload removed, nothing shipped", calls)
				}
			case tt.stageErr != "":
				if err != nil {
					t.Fatalf("ship: %v, want the staging to report", err)
				}
				if h.StageErr == nil || !strings.Contains(h.StageErr.Error(), tt.stageErr) {
					t.Fatalf("staging error %v, want it to say %q", h.StageErr, tt.stageErr)
				}
			default:
				if err != nil {
					t.Fatalf("ship: %v\n%s", err, e.Log)
				}
				checkStaged(t, e, r, 0)
			}
		})
	}
}
