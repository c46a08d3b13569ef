package ship

import (
	"context"
	"errors"
	"io"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
)

// streamDepth is how many chunks of the archive (256 KiB each, as
// archive.Write flushes them) a host's upload may lag behind the writer
// before it holds the writer back.
const streamDepth = 16

// Prepare readies every host of hosts for the archive of p before it is
// written: the compressed size is unknown then, so the files it holds,
// uncompressed, bound it.
func Prepare(ctx context.Context, rc *run.Context, hosts []*fleet.Host, p *run.Packaged) error {
	need := archiveBound(p) + p.Bytes
	return rc.Fleet.Each(ctx, hosts, "ship "+p.Manifest.Release+" to", func(ctx context.Context, h *fleet.Host) error {
		return prepare(ctx, h, p.Manifest, need)
	})
}

// Then is work for a host's last ship round trip, run once its archive is
// checked: commands, and the receiver of their results, which records how
// they went for the step they belong to to report, and returns that. Staging
// goes there, sparing a round trip of its own; its failure for the archive
// unpacked on arrival has the archive sent again (see finish).
type Then func(h *fleet.Host, p *run.Packaged) (cmds []remote.Command, receive func([]remote.Result, []error) error, err error)

// Stream runs write, which writes the archive of p, and uploads what it
// writes to every host of hosts at once, so compressing and uploading
// overlap instead of following each other; once written, each host
// verifies its copy and gets the release's metadata, then runs then's
// commands (nil: none) in the same round trip. A host whose upload fails
// is dropped from the stream while the others go on. It returns write's
// error and the joined errors of the hosts.
func Stream(ctx context.Context, rc *run.Context, hosts []*fleet.Host, p *run.Packaged, write func(io.Writer) error, then Then) (writeErr, shipErr error) {
	// One pipe per host, fed by the fan-out: a host whose upload fails
	// closes its pipe with the error, which drops it from the fan-out.
	readers := make(map[*fleet.Host]*io.PipeReader, len(hosts))
	pipes := make([]*io.PipeWriter, len(hosts))
	dests := make([]io.Writer, len(hosts))
	for i, h := range hosts {
		pr, pw := io.Pipe()
		readers[h], pipes[i], dests[i] = pr, pw, pw
	}
	written := make(chan struct{})
	var ok bool // set before written is closed
	shipped := make(chan error, 1)
	// Every host reads at once: the writer feeds them together, so a host
	// waiting for its turn would block it, and the hosts it waits for.
	// Deploy streams to at most Parallel hosts.
	all := *rc.Fleet
	all.Parallel = max(all.Parallel, len(hosts))
	go func() {
		shipped <- all.Each(ctx, hosts, "ship "+p.Manifest.Release+" to", func(ctx context.Context, h *fleet.Host) error {
			return streamTo(ctx, h, p, readers[h], written, &ok, then)
		})
	}()
	out := newFanOut(streamDepth, dests...)
	writeErr = write(out)
	out.Close()
	for _, pw := range pipes {
		pw.CloseWithError(writeErr) // nil: the end of the archive
	}
	ok = writeErr == nil
	close(written)
	return writeErr, <-shipped
}

// streamTo uploads the archive to h from pr as it is written, then, once
// written is closed, verifies it there and sends the release's metadata.
// It closes pr with the upload's error, so that the writer stops feeding a
// host that failed.
func streamTo(ctx context.Context, h *fleet.Host, p *run.Packaged, pr *io.PipeReader, written <-chan struct{}, ok *bool, then Then) error {
	// The compressed size is unknown while it is written: no total.
	bar := h.Log.NewProgress(ctx, "upload", -1)
	defer bar.Stop() // a failed upload leaves no bar on the terminal
	land, err := send(ctx, h, pr, p.Manifest.Release, p.Compression, then != nil, func(n int) { bar.Add(n) })
	pr.CloseWithError(err)
	if err != nil {
		return h.DiskFullOr(err)
	}
	defer land.outcome()
	bar.Finish()
	<-written
	if !*ok {
		// Cannot happen: a failed write fails every upload.
		return errors.New("the archive was not written")
	}
	h.BytesSent += p.Manifest.Archive.Size
	return finish(ctx, h, p, land, then)
}

// archiveBound is an upper bound of the archive's size before it is
// written: the files it holds, plus for each its tar header, an extended
// header for a long name, padding and a gzip member's header and trailer,
// plus what deflate adds to data it cannot shrink (5 bytes per stored
// block of at most 64 KiB; zstd's raw blocks add 3 per 128 KiB).
func archiveBound(p *run.Packaged) int64 {
	return p.Bytes + p.Bytes/4096 + int64(len(p.Send)+1)*3072
}

// Step is Ship as a pipeline step, for the written archive.
type Step struct{}

func (Step) String() string { return "ship" }

// Run ships rc.Packaged to every host.
func (Step) Run(ctx context.Context, rc *run.Context) error { return Ship(ctx, rc) }
