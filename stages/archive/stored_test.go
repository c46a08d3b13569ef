package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestStored(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		want bool
	}{
		{"img/photo.jpg", 50 << 10, true},
		{"img/PHOTO.JPEG", 50 << 10, true},
		{"fonts/a.woff2", 4 << 10, true},
		{"assets/app.js.gz", 2 << 10, true},
		{"assets/app.js.br", 2 << 10, true},
		{"dl/site.zip", 1 << 20, true},
		{"img/icon.png", 1023, false}, // too small for a member of its own
		{"assets/app.js", 1 << 20, false},
		{"img/logo.svg", 1 << 20, false},
		{"jpg", 1 << 20, false},
		{"data.json", 1 << 20, false},
	} {
		if got := Stored(tc.name, tc.size); got != tc.want {
			t.Errorf("Stored(%q, %d) = %v, want %v", tc.name, tc.size, got, tc.want)
		}
	}
}

// TestWriteStoresCompressedFiles packs text and already compressed files
// side by side, with each compression: the archive is one stream of
// several members (gzip) or frames (zstd), the compressed files in stored
// ones, that GNU tar extracts whole.
func TestWriteStoresCompressedFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	noise := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	text := strings.Repeat("function menu(item) { return item.price; }\n", 1500)
	tree := map[string]string{
		"app.js":    text,
		"b.woff2":   noise(8 << 10),
		"c.txt":     text,
		"photo.jpg": noise(64 << 10),
		"tiny.png":  noise(100),
	}
	dir := t.TempDir()
	writeTree(t, dir, tree)
	for _, c := range []struct {
		codec Compression
		tar   string // GNU tar's option for it
		tool  string
	}{{Gzip, "-z", "gzip"}, {Zstd, "--use-compress-program=zstd", "zstd"}} {
		t.Run(string(c.codec), func(t *testing.T) {
			data, info := packWith(t, dir, "web", c.codec)
			again, _ := packWith(t, dir, "web", c.codec)
			if !bytes.Equal(data, again) {
				t.Fatal("packing the same tree twice gave different bytes")
			}
			if info.Codec() != c.codec {
				t.Errorf("the archive says it is %s", info.Codec())
			}
			if err := CheckEntries(bytes.NewReader(data)); err != nil {
				t.Errorf("our own archive is refused: %v", err)
			}
			// web/ and app.js; b.woff2; c.txt; photo.jpg; tiny.png (too
			// small to store apart) and the end of the archive.
			if c.codec == Gzip {
				if n := countMembers(t, data); n != 5 {
					t.Errorf("%d gzip members, want 5", n)
				}
			}
			// A raw block holds up to 128 KiB: each stored file is there
			// as it is. (Stored deflate blocks end every 64 KiB.)
			for _, stored := range []string{"b.woff2", "photo.jpg"} {
				if c.codec == Zstd && !bytes.Contains(data, []byte(tree[stored])) {
					t.Errorf("%s is not in the archive as it is", stored)
				}
			}
			if raw := int64(8<<10 + 64<<10); info.Size < raw || info.Size > raw+8<<10 {
				t.Errorf("archive of %d bytes: want the %d bytes of the compressed files as they are plus a little text", info.Size, raw)
			}

			for _, tool := range []string{"tar", c.tool} {
				if _, err := exec.LookPath(tool); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatalf("%s is needed: apt-get install %s", tool, tool)
					}
					t.Skipf("%s not found; install %s", tool, tool)
				}
			}
			file := filepath.Join(t.TempDir(), "r"+c.codec.Ext())
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			extractsTo(t, file, c.tar, dir)
		})
	}
}

// TestRawFrame: frames of raw blocks, empty, of one block, and of blocks
// split at 128 KiB, written in pieces of any size, read back whole by the
// zstd decoder.
func TestRawFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{0, 1, rawBlockMax - 1, rawBlockMax, rawBlockMax + 1, 3*rawBlockMax + 77} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		var out bytes.Buffer
		f := &rawFrame{w: &out}
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(50000))
			if _, err := f.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		blocks := max(1, (size+rawBlockMax-1)/rawBlockMax)
		if want := 6 + 3*blocks + size; out.Len() != want {
			t.Errorf("%d bytes: frame of %d bytes, want %d", size, out.Len(), want)
		}
		zr, err := zstd.NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(zr)
		zr.Close()
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("%d bytes: read back %d bytes, %v", size, len(back), err)
		}
	}
}

// countMembers reads a gzip stream member by member.
func countMembers(t *testing.T, data []byte) int {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(data))
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatalf("member %d: %v", n+1, err)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatalf("member %d: %v", n+1, err)
		}
	}
}
