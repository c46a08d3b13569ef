package ship

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

func TestCheckDiskRoom(t *testing.T) {
	h := &fleet.Host{Name: "deploy@web1", Layout: server.Layout{Root: "/srv/shop"}}
	const need = 10 << 20 // the release needs 10 MiB, 11 with the headroom
	tests := []struct {
		name    string
		availKB int64
		want    string // in the error; "" for room enough
	}{
		{"plenty", 40 << 20, ""},
		{"exactly the need and a tenth", need * 11 / 10 / 1024, ""},
		{"a kilobyte short", need*11/10/1024 - 1, "disk full on deploy@web1 at /srv/shop: 11.0 MB free, the release needs about 11.0 MB; run cleanup"},
		{"nothing free", 0, "0 B free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDiskRoom(h, server.DiskUsage{AvailKB: tt.availKB}, need)
			if tt.want == "" && err != nil {
				t.Errorf("refused: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// archiveBound sizes the room a host needs before the archive exists: the
// archive written must never be larger.
func TestArchiveBoundHoldsForWrittenArchives(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	random := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"one incompressible file", map[string][]byte{"blob.bin": random(2 << 20)}},
		{"one stored file", map[string][]byte{"photo.jpg": random(8 << 20)}},
		{"stored and packed files in turn", func() map[string][]byte {
			m := map[string][]byte{}
			for i := range 100 {
				m[fmt.Sprintf("%03d.jpg", i)] = random(1 << 10)
				m[fmt.Sprintf("%03d.js", i)] = random(10)
			}
			return m
		}()},
		{"empty files", map[string][]byte{"a": nil, "b/c": nil, "d/e/f": nil}},
		{"many long names", func() map[string][]byte {
			m := map[string][]byte{}
			for i := range 200 {
				m[fmt.Sprintf("deep/%s/%03d.txt", strings.Repeat("x", 180), i)] = random(i)
			}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				path := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			files, err := archive.Scan(ctx, dir, "web")
			if err != nil {
				t.Fatal(err)
			}
			p := &run.Packaged{Send: files}
			for _, f := range files {
				p.Bytes += f.Size
			}
			for _, c := range []archive.Compression{archive.Gzip, archive.Zstd} {
				info, err := archive.Write(ctx, discard{}, []archive.Source{{Dir: dir, Prefix: "web", Files: files}}, c)
				if err != nil {
					t.Fatal(err)
				}
				if bound := archiveBound(p); info.Size > bound {
					t.Errorf("%s archive of %d bytes exceeds the bound %d", c, info.Size, bound)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
