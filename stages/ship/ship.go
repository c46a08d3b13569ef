// Package ship sends a packaged release to the hosts: the archive of new
// files, streamed while it is written or from the written file, and the
// lists the tree is verified against. Over SSH a host unpacks the archive
// as it arrives, keeping no copy, and staging hashes every file it
// extracted; should that fail, the archive is uploaded as a file, whose
// SHA-256 is verified on the host before staging extracts it.
package ship

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Ship sends the packaged release to every host: the archive of new files
// into .stagecoach/incoming/ with a progress bar, verified by SHA-256 on the
// host before anything uses it, then the manifest and the lists the tree is
// verified against. Files the live release already has were left out of
// the archive by Package; Swap hard-links them.
func Ship(ctx context.Context, rc *run.Context) error {
	return rc.Each(ctx, "ship "+rc.Plan.Release+" to", func(ctx context.Context, h *fleet.Host) error {
		return To(ctx, h, rc.Packaged, nil)
	})
}

// To sends the written archive of p to h, then runs then's commands
// (nil: none) in the same round trip as its checks. Only with then, which
// stages the release, is the archive unpacked as it arrives: staging
// later, on its own, extracts the uploaded archive.
func To(ctx context.Context, h *fleet.Host, p *run.Packaged, then Then) error {
	m := p.Manifest
	if err := prepare(ctx, h, m, m.Archive.Size+p.Bytes); err != nil {
		return err
	}
	f, err := os.Open(p.ArchivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	bar := h.Log.NewProgress(ctx, "upload "+ui.Bytes(m.Archive.Size), m.Archive.Size)
	defer bar.Stop() // a failed upload leaves no bar on the terminal
	land, err := send(ctx, h, f, m.Release, m.Archive.Codec(), then != nil, func(n int) { bar.Add(n) })
	if err != nil {
		return h.DiskFullOr(err)
	}
	defer land.outcome()
	bar.Finish()
	h.BytesSent += m.Archive.Size
	return finish(ctx, h, p, land, then)
}

// landing is how an archive fed to the host's unpacking (remote.Feeder)
// lands: the command that waits there for the unpacking to end, and the
// unpacking's own outcome, which may come after that command went out.
type landing struct {
	wait remote.Command
	fed  func() error
}

// outcome waits for the unpacking's own outcome. Every feed's is awaited,
// whatever failed first: that also releases its session.
func (l *landing) outcome() error {
	if l == nil {
		return nil
	}
	return l.fed()
}

// send sends release id's archive from r to h. When staging follows in
// finish's batch (staged) and the transport can (remote.Feeder), the host
// unpacks it into the staging directory as it arrives and keeps no copy:
// the landing's wait goes first in that batch. Else the landing is nil,
// and the archive is uploaded into h's incoming directory, for staging to
// extract.
func send(ctx context.Context, h *fleet.Host, r io.Reader, id string, c archive.Compression, staged bool, progress func(n int)) (*landing, error) {
	f, ok := h.Runner.(remote.Feeder)
	if !ok || !staged {
		return nil, h.Runner.Upload(ctx, r, h.Layout.IncomingPath(id), progress)
	}
	unpack, err := server.UnpackStream(h.Layout, id, string(c))
	if err != nil {
		return nil, err
	}
	wait, fed, err := f.Feed(ctx, unpack, r, progress)
	if err != nil {
		return nil, err
	}
	return &landing{wait: wait, fed: fed}, nil
}

// prepare readies h for the archive of m: the host must run the
// release the archive leaves files out of, and have room for need bytes
// (the archive and the files it unpacks to).
func prepare(ctx context.Context, h *fleet.Host, m *archive.Manifest, need int64) error {
	if m.Base != "" && m.Base != h.Live {
		return fmt.Errorf("the package reuses files of release %s but this host runs %q; deploy again (the hosts disagree)", m.Base, h.Live)
	}
	if h.Prepared == nil || time.Since(h.PreparedAt) >= preparedFor {
		ready, err := server.Run(ctx, h, server.Prepare(h.Layout))
		if err != nil {
			return err
		}
		h.Prepared, h.PreparedAt = &ready, time.Now()
	}
	if m.Archive.Codec() == archive.Zstd && !h.Prepared.Zstd {
		return fmt.Errorf("the archive of %s is compressed with zstd, which %s does not have (any more?): install zstd there, or deploy again for a gzip archive", m.Release, h.Name)
	}
	return checkDiskRoom(h, h.Prepared.Usage, need)
}

// Compression is the compression for an archive of files of size bytes
// sent to hosts: zstd when it is large and every host has zstd (as the
// lock's round trip or Prepare found), else gzip. On the benchmark's
// 50 MB site, zstd took a deploy from 1.13x rsync's time to 1.02x, its
// server unpacking with 0.4 s of CPU instead of 0.65; on a 1.2 MB change
// it cost 30-50 ms more than gzip, whose process and encoder start less.
func Compression(hosts []*fleet.Host, size int64) archive.Compression {
	if size < zstdMin {
		return archive.Gzip
	}
	for _, h := range hosts {
		if h.Prepared == nil || !h.Prepared.Zstd {
			return archive.Gzip
		}
	}
	return archive.Zstd
}

// zstdMin is the size of files to send from which zstd is worth it.
const zstdMin = 8 << 20

// preparedFor is how long the free space the lock's round trip measured
// (fleet.Host.Prepared) stands for the host's: a long build measures again.
const preparedFor = 30 * time.Second

// finish checks the archive shipped to h and writes the release's lists
// and manifest there, then runs then's commands, in one round trip. With
// land set (see send), h unpacked the archive as it arrived: the batch
// waits for that first, and should then's staging find the unpacking
// incomplete or the tree not matching, the archive is uploaded, checked
// whole and staged again from the file (resend), whose SHA-256 tells a
// corrupt archive from a tree that does not match. Without land, the
// uploaded archive's SHA-256 is verified first.
func finish(ctx context.Context, h *fleet.Host, p *run.Packaged, land *landing, then Then) error {
	m := p.Manifest
	sums, links, err := server.TreeLists(treeEntries(m.Files))
	if err != nil {
		return err
	}
	var manifest bytes.Buffer
	if err := m.Encode(&manifest); err != nil {
		return err
	}
	meta, sent, err := writeMetadata(h.Layout, []metaFile{
		{h.Layout.SumsPath(m.Release), sums},
		{h.Layout.LinksPath(m.Release), links},
		{h.Layout.ManifestPath(m.Release), manifest.Bytes()},
	})
	if err != nil {
		return err
	}
	var verify server.Op[struct{}]
	var first remote.Command
	if land != nil {
		first = land.wait
	} else {
		verify = server.VerifyArchive(h.Layout.IncomingPath(m.Release), m.Archive.SHA256, m.Archive.Size, h.Layout.VerifiedMark(m.Release))
		first = verify.Cmd
	}
	cmds := []remote.Command{first, meta}
	var receive func([]remote.Result, []error) error
	if then != nil {
		// Should the commands not build, the step they belong to runs
		// them itself, and says why they fail.
		if more, recv, err := then(h, p); err == nil {
			cmds, receive = append(cmds, more...), recv
		}
	}
	results, errs := h.RunBatch(ctx, cmds...)
	if land != nil {
		// The unpacking's own failure says best why the wait failed.
		if err := land.outcome(); err != nil {
			return h.DiskFullOr(err)
		}
		if errs[0] != nil {
			return h.DiskFullOr(fmt.Errorf("unpack %s on %s: %w", m.Release, h.Name, errs[0]))
		}
	} else if _, err := verify.Decode(results[0], errs[0]); err != nil {
		var corrupt *server.ArchiveMismatchError
		if errors.As(err, &corrupt) {
			h.Run(context.WithoutCancel(ctx), server.RemoveUpload(h.Layout, m.Release))
		}
		return err
	}
	if err := errs[1]; err != nil {
		return h.DiskFullOr(err)
	}
	h.BytesSent += sent
	if receive != nil {
		if err := receive(results[2:], errs[2:]); land != nil && unverified(err) {
			return resend(ctx, h, p, then, err)
		}
	}
	h.Shipped = true
	checked := "sha256 verified"
	if land != nil {
		checked = "unpacked as it arrived" // staging says how every file compared
	}
	h.Log.Infof("shipped %s: %s sent, %d files reused, %s", m.Release, ui.Bytes(h.BytesSent), len(p.Reuse), checked)
	return nil
}

// unverified reports whether staging failed for what the archive, as
// unpacked on arrival, held: it did not unpack whole, or the tree does not
// match the manifest. A full disk is not the archive's doing.
func unverified(err error) bool {
	var notUnpacked *server.NotUnpackedError
	var mismatch *server.TreeMismatchError
	return (errors.As(err, &notUnpacked) || errors.As(err, &mismatch)) && !server.IsDiskFull(err)
}

// resend uploads the written archive of p to h, whose unpacking of it on
// arrival did not verify (why), and finishes again from the uploaded file.
func resend(ctx context.Context, h *fleet.Host, p *run.Packaged, then Then, why error) error {
	m := p.Manifest
	h.Log.Warnf("%s did not verify as unpacked on arrival (%v); uploading its archive, to check it whole", m.Release, why)
	f, err := os.Open(p.ArchivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := h.Runner.Upload(ctx, f, h.Layout.IncomingPath(m.Release), nil); err != nil {
		return h.DiskFullOr(err)
	}
	h.BytesSent += m.Archive.Size
	return finish(ctx, h, p, nil, then)
}

// metaFile is a file of release metadata to write on the host.
type metaFile struct {
	path string
	data []byte
}

// writeMetadata builds the command that writes the release's metadata
// files, all in the manifests directory, in one session: they travel as a
// gzipped tar on stdin (the lists and the manifest of a 2,000-file release
// shrink from about 700 KB to a third, at gzip's fastest level as at its
// default) and are unpacked in incoming/ (whose leftovers cleanup
// removes), then moved into place by one mv, each renamed, so none is ever
// seen half written: a stream cut short fails gzip's check before any
// rename. gzip writes the tar to a file, which tar reads: given -z and a
// pipe, tar would fork a process to copy it in. It returns the bytes the
// command sends.
func writeMetadata(l server.Layout, files []metaFile) (remote.Command, int64, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return remote.Command{}, 0, err
	}
	tw := tar.NewWriter(zw)
	dir := l.ManifestsDir()
	names := make([]string, len(files))
	for i, f := range files {
		if path.Dir(f.path) != dir {
			return remote.Command{}, 0, fmt.Errorf("write release metadata: %s is not in %s", f.path, dir)
		}
		names[i] = path.Base(f.path)
		if err := tw.WriteHeader(&tar.Header{Name: names[i], Mode: 0o644, Size: int64(len(f.data)), ModTime: archive.Epoch}); err != nil {
			return remote.Command{}, 0, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return remote.Command{}, 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return remote.Command{}, 0, err
	}
	if err := zw.Close(); err != nil {
		return remote.Command{}, 0, err
	}
	script := "set -e\n" +
		"[ -d " + remote.Quote(l.IncomingDir()) + " ] && [ -d " + remote.Quote(dir) + " ] || mkdir -p " + remote.Join(l.IncomingDir(), dir) + "\n" +
		"tmp=$(mktemp -d " + remote.Quote(l.IncomingDir()+"/metadata.XXXXXX") + ")\n" +
		"trap 'rm -rf \"$tmp\"' EXIT\n" +
		"gzip -dc > \"$tmp/.tar\"\n" +
		"tar -x -f \"$tmp/.tar\" -C \"$tmp\" --no-same-owner\n" +
		"cd \"$tmp\"\n" +
		"mv -f -t " + remote.Quote(dir) + " -- " + remote.Join(names...) + "\n"
	cmd := remote.Command{Desc: "write release metadata", Script: script, Stdin: bytes.NewReader(buf.Bytes())}
	return cmd, int64(buf.Len()), nil
}

// treeEntries turns manifest files into what the server verifies against.
func treeEntries(files []archive.File) []server.TreeEntry {
	out := make([]server.TreeEntry, len(files))
	for i, f := range files {
		out[i] = server.TreeEntry{Path: f.Path, SHA256: f.SHA256, Link: f.Link}
	}
	return out
}

// checkDiskRoom refuses to ship when the host's filesystem cannot hold the archive and the files it unpacks to, before
// anything is written.
func checkDiskRoom(h *fleet.Host, df server.DiskUsage, need int64) error {
	need += need / 10 // headroom for directories and the state file
	if free := df.AvailKB * 1024; free < need {
		return fmt.Errorf("disk full on %s at %s: %s free, the release needs about %s; run cleanup or free space",
			h.Name, h.Layout.Root, ui.Bytes(free), ui.Bytes(need))
	}
	return nil
}
