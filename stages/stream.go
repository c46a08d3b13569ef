package stages

import (
	"context"
	"errors"
	"io"
	"time"
)

// streamDepth is how many chunks of the archive (256 KiB each, as
// archive.Write flushes them) a host's upload may lag behind the writer
// before it holds the writer back.
const streamDepth = 16

// errNotWritten is the package's result when the ship failed before the
// archive was written.
var errNotWritten = errors.New("archive not written: the ship failed first")

// packageAndShip is Deploy's Package and Ship at once: the archive goes to
// the local package and, as it is written, to every host, so compressing
// and uploading overlap instead of following each other. The standalone
// Package and Ship keep them apart. Each stage keeps its hooks, before the
// stream starts and after it ends, and its own line in the report: the
// two durations overlap. It returns the stage that failed, if any.
func (r *Run) packageAndShip(ctx context.Context) (failed string, err error) {
	id := r.Plan.Release
	doing := "ship " + id + " to"

	pkgStart := time.Now()
	if err := r.hook(ctx, "before-package"); err != nil {
		r.addStage("package", time.Since(pkgStart), err)
		return "package", err
	}
	p, err := planPackage(ctx, r.Cfg, r.Plan, r.Previous, r.Log)
	if err != nil {
		r.addStage("package", time.Since(pkgStart), err)
		return "package", err
	}

	shipStart := time.Now()
	// At most Parallel hosts take the stream; the others get the written
	// archive afterwards, as Ship sends it.
	streamed, rest := r.Hosts, []*Host(nil)
	if n := max(r.Env.Parallel, 1); len(streamed) > n {
		streamed, rest = r.Hosts[:n], r.Hosts[n:]
	}
	err = r.hook(ctx, "before-ship")
	if err == nil {
		// The compressed size is unknown until the archive is written:
		// the files it holds, uncompressed, bound it.
		err = r.eachHost(ctx, streamed, doing, func(ctx context.Context, h *Host) error {
			return prepareShip(ctx, h, p.Manifest, archiveBound(p)+p.Bytes)
		})
	}
	if err != nil {
		r.addStage("package", time.Since(pkgStart), errNotWritten)
		r.addStage("ship", time.Since(shipStart), err)
		return "ship", err
	}

	// One pipe per host, fed by the fan-out: a host whose upload fails
	// closes its pipe with the error, which drops it from the fan-out
	// while the others go on.
	readers := make(map[*Host]*io.PipeReader, len(streamed))
	pipes := make([]*io.PipeWriter, len(streamed))
	dests := make([]io.Writer, len(streamed))
	for i, h := range streamed {
		pr, pw := io.Pipe()
		readers[h], pipes[i], dests[i] = pr, pw, pw
	}
	written := make(chan struct{})
	shipped := make(chan error, 1)
	go func() {
		shipped <- r.eachHost(ctx, streamed, doing, func(ctx context.Context, h *Host) error {
			return r.streamTo(ctx, h, readers[h], written)
		})
	}()
	out := newFanOut(streamDepth, dests...)
	werr := writePackage(ctx, p, r.Log, out)
	out.Close()
	for _, pw := range pipes {
		pw.CloseWithError(werr) // nil: the end of the archive
	}
	if werr == nil {
		r.Packaged = p
	}
	close(written)
	pkgTook := time.Since(pkgStart)
	shipErr := <-shipped

	if werr == nil {
		hookStart := time.Now()
		werr = r.hook(ctx, "after-package")
		pkgTook += time.Since(hookStart)
	}
	if werr == nil {
		werr = ctx.Err()
	}
	r.addStage("package", pkgTook, werr)
	if werr != nil {
		r.addStage("ship", time.Since(shipStart), shipErr)
		return "package", werr
	}
	if shipErr == nil && len(rest) > 0 {
		shipErr = r.eachHost(ctx, rest, doing, r.shipTo)
	}
	if shipErr == nil {
		shipErr = r.hook(ctx, "after-ship")
	}
	if shipErr == nil {
		shipErr = ctx.Err()
	}
	r.addStage("ship", time.Since(shipStart), shipErr)
	if shipErr != nil {
		return "ship", shipErr
	}
	return "", nil
}

// streamTo uploads the archive to h from pr as it is written, then, once
// written is closed, verifies it there and sends the release's metadata.
// It closes pr with the upload's error, so that the writer stops feeding a
// host that failed.
func (r *Run) streamTo(ctx context.Context, h *Host, pr *io.PipeReader, written <-chan struct{}) error {
	// The compressed size is unknown while it is written: no total.
	bar := h.Log.NewProgress("upload", -1)
	err := h.Runner.Upload(ctx, pr, h.Layout.IncomingPath(r.Plan.Release), func(n int) { bar.Add(n) })
	pr.CloseWithError(err)
	if err != nil {
		return diskFullOr(h, err)
	}
	bar.Finish()
	<-written
	if r.Packaged == nil {
		// Cannot happen: a failed write fails every upload.
		return errors.New("the archive was not written")
	}
	h.BytesSent += r.Packaged.Manifest.Archive.Size
	return r.finishShip(ctx, h)
}

// archiveBound is an upper bound of the archive's size before it is
// written: the files it holds, plus for each its tar header, an extended
// header for a long name, and padding.
func archiveBound(p *Packaged) int64 {
	return p.Bytes + int64(len(p.Send)+1)*3072
}

// addStage adds a stage's line to the report.
func (r *Run) addStage(name string, took time.Duration, err error) {
	r.report.addStage(StageReport{Name: name, Duration: took, Result: resultOf(err), Error: errString(err)})
}
