package ship_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ship"
)

func TestShipSendsVerifiedArchiveAndMetadataToEveryHost(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	r := pipelinetest.Packaged(t, e)
	step := ship.Step{}
	if step.String() != "ship" {
		t.Errorf("step is called %q", step)
	}
	if err := step.Run(context.Background(), r.Context); err != nil {
		t.Fatalf("ship: %v\n%s", err, e.Log)
	}
	for i := range e.Names {
		checkShipped(t, e, r, i)
		e.CheckCalls(t, i, 0, shippedCalls...)
	}
}

func TestShipRemovesCorruptUploadOnOneHost(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	r := pipelinetest.Packaged(t, e)
	incoming := r.Hosts[1].Layout.IncomingPath(r.Plan.Release)
	garbage := []byte("not the archive")
	// The bytes change on the host between the upload and the check, as
	// they would if corrupted in transit.
	e.Fake(1).On("verify archive checksum").Then(func() {
		if err := os.WriteFile(incoming, garbage, 0o644); err != nil {
			t.Error(err)
		}
	}).Pass()

	err := ship.Ship(context.Background(), r.Context)
	sum := sha256.Sum256(garbage)
	for _, want := range []string{
		"ship " + r.Plan.Release + " to deploy@web2",
		"is corrupt or was tampered with in transit",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %q", err, want)
		}
	}
	var corrupt *server.ArchiveMismatchError
	if !errors.As(err, &corrupt) || corrupt.Path != incoming || corrupt.Expected != r.Packaged.Manifest.Archive.SHA256 || corrupt.Actual != hex.EncodeToString(sum[:]) {
		t.Errorf("error %#v is not the mismatch of %s", err, incoming)
	}
	if err != nil && (strings.Contains(err.Error(), "web1") || strings.Contains(err.Error(), "web3")) {
		t.Errorf("error names a host that shipped: %v", err)
	}
	checkShipped(t, e, r, 0)
	checkShipped(t, e, r, 2)
	checkNotShipped(t, e, r, 1, false)
	want := []string{"prepare server", "upload", "verify archive checksum", "remove corrupt upload"}
	e.CheckCalls(t, 1, 0, want...)
}

func TestShipRefusesHostRunningAnotherReleaseThanTheBase(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	live := pipelinetest.Deploy(t, e)
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	e.Commit(t, "v2")
	r := pipelinetest.Packaged(t, e)
	if r.Packaged.Manifest.Base != live {
		t.Fatalf("package reuses from %q, want the live %s", r.Packaged.Manifest.Base, live)
	}
	// As a host switched by someone else since Detect read it: the files
	// the archive leaves out are not where the package expects them.
	const other = "20000101T000000Z-0000000"
	r.Hosts[1].Live = other
	marks := e.Marks()

	err := ship.Ship(context.Background(), r.Context)
	want := fmt.Sprintf("ship %s to deploy@web2: the package reuses files of release %s but this host runs %q", r.Plan.Release, live, other)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	e.CheckCalls(t, 1, marks[1])
	checkNotShipped(t, e, r, 1, false)
	for _, i := range []int{0, 2} {
		e.CheckCalls(t, i, marks[i], shippedCalls...)
	}
}

// dfOutput is `df -Pk` saying the filesystem has availKB free.
func dfOutput(availKB int64) []byte {
	return fmt.Appendf(nil, "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 1000000 %d %d 50%% /\n", 1000000-availKB, availKB)
}

func TestToFailures(t *testing.T) {
	tests := []struct {
		name   string
		fake   func(f *remotetest.Fake)            // rules for the host, when set
		change func(t *testing.T, p *run.Packaged) // what happens to the package, when set
		want   string                              // in the error
		is     error                               // the error wraps it, when set
		calls  []string
		upload bool // the upload stays on the host
	}{{
		name:  "server lacks tools",
		fake:  func(f *remotetest.Fake) { f.On("prepare server").Exit(79, "missing tools on the server: GNU-tar") },
		want:  "missing tools on the server: GNU-tar",
		calls: []string{"prepare server"},
	}, {
		name:  "df output unreadable",
		fake:  func(f *remotetest.Fake) { f.On("prepare server").Stdout([]byte("df: unsupported\n")) },
		want:  "unexpected df output",
		calls: []string{"prepare server"},
	}, {
		name:  "disk too small for the release",
		fake:  func(f *remotetest.Fake) { f.On("prepare server").Stdout(dfOutput(0)) },
		want:  "disk full on deploy@web1 at ",
		calls: []string{"prepare server"},
	}, {
		name: "local archive gone",
		change: func(t *testing.T, p *run.Packaged) {
			if err := os.Remove(p.ArchivePath); err != nil {
				t.Fatal(err)
			}
		},
		want:  "release.tar.gz",
		is:    os.ErrNotExist,
		calls: []string{"prepare server"},
	}, {
		name:  "upload runs out of space",
		fake:  func(f *remotetest.Fake) { f.On("upload").Exit(1, "write: No space left on device") },
		want:  "disk full on deploy@web1 at ",
		calls: []string{"prepare server", "upload"},
	}, {
		// The answer is lost, not the archive: nothing proves it corrupt,
		// so it stays for cleanup and is not reported as tampered with.
		name:   "connection lost while verifying",
		fake:   func(f *remotetest.Fake) { f.On("verify archive checksum").LoseConnection() },
		is:     remote.ErrConnectionLost,
		calls:  []string{"prepare server", "upload", "verify archive checksum"},
		upload: true,
	}, {
		name:   "manifest entry with a bad checksum",
		change: func(_ *testing.T, p *run.Packaged) { p.Manifest.Files[0].SHA256 = "not-a-sha" },
		want:   "is not 64 lowercase hex digits",
		calls:  []string{"prepare server", "upload"}, // refused before anything runs on the host
		upload: true,
	}, {
		name:   "metadata runs out of space",
		fake:   func(f *remotetest.Fake) { f.On("write release metadata").Exit(1, "No space left on device") },
		want:   "disk full on deploy@web1 at ",
		calls:  shippedCalls,
		upload: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{})
			r := pipelinetest.Packaged(t, e)
			if tt.fake != nil {
				tt.fake(e.Fake(0))
			}
			if tt.change != nil {
				tt.change(t, r.Packaged)
			}
			err := ship.To(context.Background(), r.Hosts[0], r.Packaged, nil)
			if err == nil {
				t.Fatal("shipped")
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("error %v, want it to say %q and wrap %v", err, tt.want, tt.is)
			}
			e.CheckCalls(t, 0, 0, tt.calls...)
			checkNotShipped(t, e, r, 0, tt.upload)
		})
	}
}
