package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
// side by side: the archive is one gzip stream of several members, the
// compressed files in stored ones, that GNU tar extracts whole.
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
	data, info := pack(t, dir, "web")
	again, _ := pack(t, dir, "web")
	if !bytes.Equal(data, again) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
	if err := CheckEntries(bytes.NewReader(data)); err != nil {
		t.Errorf("our own archive is refused: %v", err)
	}
	// web/ and app.js; b.woff2; c.txt; photo.jpg; tiny.png (too small to
	// store apart) and the end of the archive.
	if n := countMembers(t, data); n != 5 {
		t.Errorf("%d gzip members, want 5", n)
	}
	if raw := int64(8<<10 + 64<<10); info.Size < raw || info.Size > raw+8<<10 {
		t.Errorf("archive of %d bytes: want the %d bytes of the compressed files as they are plus a little text", info.Size, raw)
	}

	if _, err := exec.LookPath("tar"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("GNU tar is needed: apt-get install tar")
		}
		t.Skip("GNU tar not found; install tar")
	}
	file := filepath.Join(t.TempDir(), "r.tar.gz")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", file, "-C", into).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	back, err := Scan(context.Background(), filepath.Join(into, "web"), "web")
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := Scan(context.Background(), dir, "web")
	if !reflect.DeepEqual(back, orig) {
		t.Errorf("extracted tree differs:\n got %+v\nwant %+v", back, orig)
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
