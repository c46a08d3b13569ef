package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDeployZstdOverSSH deploys, over a real sshd, a release with 9 MiB
// to send (an image): every host has zstd, so the archive is zstd, its
// image stored in raw blocks, unpacked as it arrives, verified and
// served whole. The small change after it goes as gzip, the image reused.
func TestDeployZstdOverSSH(t *testing.T) {
	testenv.RequireTool(t, "zstd", "apt-get install -y zstd")
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	photo := make([]byte, 9<<20)
	rand.Read(photo)
	p.Write("frontend/src/img/photo.jpg", string(photo))
	p.Commit("add a large photo")

	first := mustDeploy(t, p)
	if c := first.run.Packaged.Compression; c != archive.Zstd {
		t.Fatalf("the 9 MiB release went as %q, want zstd", c)
	}
	servedPhoto(t, p.Root, photo)

	p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// changed\n")
	p.Commit("change the frontend")
	second := mustDeploy(t, p)
	if c := second.run.Packaged.Compression; c != archive.Gzip {
		t.Errorf("the small change went as %q, want gzip", c)
	}
	if live(t, p.Root) == first.run.Plan.Release {
		t.Fatal("the small change did not switch current")
	}
	servedPhoto(t, p.Root, photo)
}

// servedPhoto checks that the live release holds the photo, whole.
func servedPhoto(t *testing.T, root string, want []byte) {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(root, "current", "frontend", "assets", "photo-*.jpg"))
	if err != nil || len(found) != 1 {
		t.Fatalf("live release: photo %v (%v), want one", found, err)
	}
	got, err := os.ReadFile(found[0])
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("live photo: %d bytes (%v), want the %d committed", len(got), err, len(want))
	}
}
