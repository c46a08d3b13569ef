package stages

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Ship sends the packaged release to every host: the archive of new files
// into .stagecoach/incoming/ with a progress bar, verified by SHA-256 on the
// host before anything uses it, then the manifest and the lists the tree is
// verified against. Files the live release already has were left out of
// the archive by Package; Swap hard-links them.
func (r *Run) Ship(ctx context.Context) error {
	return r.eachHost(ctx, r.Hosts, "ship "+r.Plan.Release+" to", r.shipTo)
}

func (r *Run) shipTo(ctx context.Context, h *Host) error {
	p := r.Packaged
	m := p.Manifest
	if m.Base != "" && m.Base != h.Live {
		return fmt.Errorf("the package reuses files of release %s but this host runs %q; deploy again (the hosts disagree)", m.Base, h.Live)
	}
	if _, err := h.run(ctx, server.Prepare(h.Layout)); err != nil {
		return err
	}
	if err := checkDiskRoom(ctx, h, m.Archive.Size+p.Bytes); err != nil {
		return err
	}

	incoming := h.Layout.IncomingPath(m.Release)
	f, err := os.Open(p.ArchivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	bar := h.Log.NewProgress("upload "+ui.Bytes(m.Archive.Size), m.Archive.Size)
	err = h.Runner.Upload(ctx, f, incoming, func(n int) { bar.Add(n) })
	if err != nil {
		return diskFullOr(h, err)
	}
	bar.Finish()
	h.BytesSent += m.Archive.Size

	res, err := h.run(ctx, server.VerifyArchive(incoming, m.Archive.SHA256))
	if err != nil {
		if server.ExitCode(err) == server.ExitArchiveMismatch {
			h.run(context.WithoutCancel(ctx), remote.Cmd("remove corrupt upload", "rm", "-f", incoming))
			return server.ArchiveMismatch(incoming, res.Stdout)
		}
		return err
	}

	sums, links, err := server.TreeLists(treeEntries(m.Files))
	if err != nil {
		return err
	}
	var manifest bytes.Buffer
	if err := m.Encode(&manifest); err != nil {
		return err
	}
	for _, up := range []struct {
		path string
		data []byte
	}{
		{h.Layout.SumsPath(m.Release), sums},
		{h.Layout.LinksPath(m.Release), links},
		{h.Layout.ManifestPath(m.Release), manifest.Bytes()},
	} {
		if err := h.Runner.Upload(ctx, bytes.NewReader(up.data), up.path, nil); err != nil {
			return diskFullOr(h, err)
		}
		h.BytesSent += int64(len(up.data))
	}
	h.Shipped = true
	h.Log.Infof("shipped %s: %s sent, %d files reused, sha256 verified", m.Release, ui.Bytes(h.BytesSent), len(p.Reuse))
	return nil
}

// treeEntries turns manifest files into what the server verifies against.
func treeEntries(files []archive.File) []server.TreeEntry {
	out := make([]server.TreeEntry, len(files))
	for i, f := range files {
		out[i] = server.TreeEntry{Path: f.Path, SHA256: f.SHA256, Link: f.Link}
	}
	return out
}

// checkDiskRoom refuses to ship when the host's filesystem cannot hold the
// archive and the files it unpacks to, before anything is written.
func checkDiskRoom(ctx context.Context, h *Host, need int64) error {
	res, err := h.run(ctx, server.DiskFree(h.Layout))
	if err != nil {
		return err
	}
	df, err := server.ParseDiskFree(res.Stdout)
	if err != nil {
		return err
	}
	need += need / 10 // headroom for directories and the state file
	if free := df.AvailKB * 1024; free < need {
		return fmt.Errorf("disk full on %s at %s: %s free, the release needs about %s; run cleanup or free space",
			h.Name, h.Layout.Root, ui.Bytes(free), ui.Bytes(need))
	}
	return nil
}

// diskFullOr says plainly when a host ran out of space.
func diskFullOr(h *Host, err error) error {
	if server.IsDiskFull(err) {
		return fmt.Errorf("disk full on %s at %s (no space left on device): %w", h.Name, h.Layout.Root, err)
	}
	return err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
