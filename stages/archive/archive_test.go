package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTree creates files under dir: name -> content; a content starting
// with "->" makes a symlink, a name ending in "*" an executable.
func writeTree(t testing.TB, dir string, tree map[string]string) {
	t.Helper()
	for name, content := range tree {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // the umask may have cut bits
			t.Fatal(err)
		}
	}
}

func hexsum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var sample = map[string]string{
	"index.html":         "<html>hello</html>",
	"assets/app-1a2b.js": "console.log(1)",
	"assets/a.css":       "body{}",
	"bin/server*":        "#!/bin/sh\necho hi\n",
	"empty.txt":          "",
	"latest.js":          "->assets/app-1a2b.js",
	"a.txt":              "a",
	"a/b/c.txt":          "abc",
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sample)
	got, err := Scan(context.Background(), dir, "frontend")
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: "frontend/a.txt", Size: 1, Mode: 0o644, SHA256: hexsum("a")},
		{Path: "frontend/a/b/c.txt", Size: 3, Mode: 0o644, SHA256: hexsum("abc")},
		{Path: "frontend/assets/a.css", Size: 6, Mode: 0o644, SHA256: hexsum("body{}")},
		{Path: "frontend/assets/app-1a2b.js", Size: 14, Mode: 0o644, SHA256: hexsum("console.log(1)")},
		{Path: "frontend/bin/server", Size: 18, Mode: 0o755, SHA256: hexsum("#!/bin/sh\necho hi\n")},
		{Path: "frontend/empty.txt", Size: 0, Mode: 0o644, SHA256: hexsum("")},
		{Path: "frontend/index.html", Size: 18, Mode: 0o644, SHA256: hexsum("<html>hello</html>")},
		{Path: "frontend/latest.js", Mode: 0o777, Link: "assets/app-1a2b.js"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan:\n got %+v\nwant %+v", got, want)
	}
	root, err := Scan(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if root[0].Path != "a.txt" {
		t.Errorf("Scan with empty prefix: first path %q, want a.txt", root[0].Path)
	}
}

// TestListLeavesTheHashesToWrite: List hashes only empty files; Write
// fills in the others' SHA-256 as it reads them, the same as Scan's, and
// keeps those it was given.
func TestListLeavesTheHashesToWrite(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sample)
	scanned, err := Scan(context.Background(), dir, "web")
	if err != nil {
		t.Fatal(err)
	}
	listed, err := List(context.Background(), dir, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range listed {
		switch {
		case f.Size == 0 && !f.IsLink() && f.SHA256 != hexsum(""):
			t.Errorf("%s: empty file listed with SHA-256 %q", f.Path, f.SHA256)
		case f.Size > 0 && f.SHA256 != "":
			t.Errorf("%s: hashed by List", f.Path)
		}
	}
	listed[0].SHA256 = scanned[0].SHA256 // as a stopped hashing leaves some
	var b bytes.Buffer
	if _, err := Write(context.Background(), &b, []Source{{Dir: dir, Prefix: "web", Files: listed}}, Gzip); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(listed, scanned) {
		t.Errorf("after Write:\n got %+v\nwant %+v", listed, scanned)
	}
}

// TestHashing: Wait fills in what Scan would; a file whose size is not the
// one listed fails it; Stop keeps what was hashed and leaves the rest.
func TestHashing(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sample)
	scanned, err := Scan(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	listed, err := List(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	h := Hash(context.Background(), dir, "", listed)
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(listed, scanned) {
		t.Errorf("after Wait:\n got %+v\nwant %+v", listed, scanned)
	}

	listed, _ = List(context.Background(), dir, "")
	h = Hash(context.Background(), dir, "", listed)
	h.Stop()
	h.Stop() // as the run's end does after a plan stopped it
	for i, f := range listed {
		if f.SHA256 != "" && f.SHA256 != scanned[i].SHA256 {
			t.Errorf("%s: stopped hashing left SHA-256 %s, want %s or none", f.Path, f.SHA256, scanned[i].SHA256)
		}
	}

	listed, _ = List(context.Background(), dir, "")
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>longer</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Hash(context.Background(), dir, "", listed).Wait()
	if err == nil || !strings.Contains(err.Error(), "hash index.html: ") || !strings.Contains(err.Error(), "changed while it was scanned") {
		t.Errorf("Wait after a file grew: %v", err)
	}
}

func TestMayReuse(t *testing.T) {
	f := func(p string, size int64, mode uint32) File {
		return File{Path: p, Size: size, Mode: mode}
	}
	prev := &Manifest{Files: []File{f("a.js", 10, 0o644), f("server", 20, 0o755), f("empty", 0, 0o644),
		{Path: "l", Mode: ModeLink, Link: "a.js"}}}
	tests := []struct {
		name  string
		files []File
		prev  *Manifest
		want  bool
	}{
		{"first deploy", []File{f("a.js", 10, 0o644)}, nil, false},
		{"same size and mode elsewhere", []File{f("b.js", 10, 0o644)}, prev, true},
		{"same size, other mode", []File{f("a.js", 10, 0o755)}, prev, false},
		{"new sizes only", []File{f("a.js", 11, 0o644), f("server", 21, 0o755)}, prev, false},
		{"empty files are always sent", []File{f("empty", 0, 0o644)}, prev, false},
		{"links are always sent", []File{{Path: "l", Mode: ModeLink, Link: "a.js"}}, prev, false},
		{"one of many", []File{f("x", 1, 0o644), f("server", 20, 0o755)}, prev, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MayReuse(tt.files, tt.prev); got != tt.want {
				t.Errorf("MayReuse = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name string
		tree map[string]string
		fifo string
		want string
	}{
		{"absolute symlink", map[string]string{"x": "->/etc"}, "", "symlink x -> /etc escapes"},
		{"parent symlink", map[string]string{"x": "->../y"}, "", "symlink x -> ../y escapes"},
		{"deep climb", map[string]string{"a/b": "->../../.."}, "", "symlink a/b -> ../../.. escapes"},
		{"through inner link", map[string]string{"l": "->.", "x": "->l/.."}, "", "symlink x -> l/.. escapes"},
		{"link loop", map[string]string{"a": "->b", "b": "->a"}, "", "too many levels"},
		{"fifo", map[string]string{"ok.txt": "x"}, "sub/pipe", "sub/pipe is a named pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.tree)
			if tt.fifo != "" {
				p := filepath.Join(dir, tt.fifo)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Scan(context.Background(), dir, "c")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Scan error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		_, err := Scan(context.Background(), filepath.Join(t.TempDir(), "nope"), "c")
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("Scan error = %v", err)
		}
	})
	t.Run("inner links are fine", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"a/b/c": "x", "a/up": "->..", "a/b/l": "->../../a/b/c", "d": "->a/up/a/b"})
		if _, err := Scan(context.Background(), dir, "c"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, sample)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Scan(ctx, dir, "c"); err == nil {
			t.Fatal("Scan with a cancelled context succeeded")
		}
	})
}

func TestDiff(t *testing.T) {
	f := func(p, content string, mode uint32) File {
		return File{Path: p, Size: int64(len(content)), Mode: mode, SHA256: hexsum(content)}
	}
	link := File{Path: "web/l", Mode: 0o777, Link: "a.js"}
	prev := &Manifest{Release: "r1", Files: []File{
		f("api/server", "bin", 0o755),
		f("web/a.js", "A", 0o644),
		f("web/b.js", "B", 0o644),
		f("web/copy-of-a.js", "A", 0o644),
		f("web/empty", "", 0o644),
		link,
	}}
	tests := []struct {
		name      string
		next      []File
		prev      *Manifest
		wantSend  []string
		wantReuse []string // path<-from
	}{
		{"first deploy", []File{f("web/a.js", "A", 0o644)}, nil, []string{"web/a.js"}, nil},
		{"same path", []File{f("web/a.js", "A", 0o644)}, prev, nil, []string{"web/a.js<-web/a.js"}},
		{"changed content", []File{f("web/a.js", "A2", 0o644)}, prev, []string{"web/a.js"}, nil},
		{"moved file", []File{f("web/new.js", "B", 0o644)}, prev, nil, []string{"web/new.js<-web/b.js"}},
		{"copy picks first", []File{f("web/z.js", "A", 0o644)}, prev, nil, []string{"web/z.js<-web/a.js"}},
		{"same path preferred", []File{f("web/copy-of-a.js", "A", 0o644)}, prev, nil, []string{"web/copy-of-a.js<-web/copy-of-a.js"}},
		{"mode differs", []File{f("web/a.js", "A", 0o755)}, prev, []string{"web/a.js"}, nil},
		{"symlink always sent", []File{link}, prev, []string{"web/l"}, nil},
		{"empty always sent", []File{f("web/empty", "", 0o644)}, prev, []string{"web/empty"}, nil},
		{"mix", []File{f("api/server", "bin", 0o755), f("web/a.js", "A", 0o644), f("web/c.js", "C", 0o644)}, prev,
			[]string{"web/c.js"}, []string{"api/server<-api/server", "web/a.js<-web/a.js"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, reuse := Diff(tt.next, tt.prev)
			var gotSend, gotReuse []string
			for _, s := range send {
				gotSend = append(gotSend, s.Path)
			}
			for _, r := range reuse {
				gotReuse = append(gotReuse, r.Path+"<-"+r.From)
				if r.SHA256 == "" {
					t.Errorf("reuse %s lost its hash", r.Path)
				}
			}
			if !reflect.DeepEqual(gotSend, tt.wantSend) || !reflect.DeepEqual(gotReuse, tt.wantReuse) {
				t.Errorf("Diff: send %v reuse %v; want send %v reuse %v", gotSend, gotReuse, tt.wantSend, tt.wantReuse)
			}
		})
	}
}

// evil builds a tar.gz from raw headers, as an attacker (or a buggy tool) would.
func evil(t *testing.T, hdrs ...tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		h := h
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size == 1 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestCheckEntries(t *testing.T) {
	reg := func(n string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeReg} }
	dir := func(n string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755} }
	sym := func(n, to string) tar.Header {
		return tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777}
	}
	hard := func(n, to string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeLink, Linkname: to} }
	tests := []struct {
		name string
		hdrs []tar.Header
		want string // "" = accepted
	}{
		{"plain", []tar.Header{dir("a/"), reg("a/b"), sym("a/l", "b"), sym("up", "a/../a/b"), hard("a/h", "a/b")}, ""},
		{"absolute", []tar.Header{reg("/etc/passwd")}, "absolute path"},
		{"dotdot", []tar.Header{reg("../x")}, "climbs out"},
		{"inner dotdot", []tar.Header{reg("a/../../x")}, "climbs out"},
		{"unclean", []tar.Header{reg("./a")}, "not clean"},
		{"symlink absolute", []tar.Header{sym("x", "/etc")}, "symlink x -> /etc escapes"},
		{"symlink climbing", []tar.Header{dir("a/"), sym("a/b", "../../..")}, "symlink a/b -> ../../.. escapes"},
		{"symlink via symlink", []tar.Header{sym("l", "."), sym("x", "l/..")}, "symlink x -> l/.. escapes"},
		{"write through symlink", []tar.Header{sym("d", "sub"), reg("d/passwd")}, "under symlink d"},
		{"hardlink outside", []tar.Header{hard("x", "../../etc/shadow")}, "climbs out"},
		{"hardlink absolute", []tar.Header{hard("x", "/etc/shadow")}, "absolute path"},
		{"hardlink to unknown", []tar.Header{hard("x", "y")}, "not an earlier regular file"},
		{"char device", []tar.Header{{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, "device or fifo"},
		{"fifo", []tar.Header{{Name: "p", Typeflag: tar.TypeFifo}}, "device or fifo"},
		{"setuid", []tar.Header{{Name: "s", Typeflag: tar.TypeReg, Mode: 0o4755}}, "setuid"},
		{"duplicate", []tar.Header{reg("a"), reg("a")}, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEntries(bytes.NewReader(evil(t, tt.hdrs...)))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused a good archive: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckEntries error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := CheckEntries(strings.NewReader("not gzip")); err == nil {
		t.Error("CheckEntries accepted garbage")
	}
}

func pack(t *testing.T, dir, prefix string) ([]byte, ArchiveInfo) {
	t.Helper()
	return packWith(t, dir, prefix, Gzip)
}

func packWith(t *testing.T, dir, prefix string, c Compression) ([]byte, ArchiveInfo) {
	t.Helper()
	files, err := Scan(context.Background(), dir, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	info, err := Write(context.Background(), &b, []Source{{Dir: dir, Prefix: prefix, Files: files}}, c)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), info
}

func TestWriteDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sample)
	first, info := pack(t, dir, "web")
	sum := sha256.Sum256(first)
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(first)) || info.Files != len(sample) {
		t.Errorf("ArchiveInfo %+v does not describe the %d bytes written", info, len(first))
	}
	if err := CheckEntries(bytes.NewReader(first)); err != nil {
		t.Errorf("our own archive is refused: %v", err)
	}

	// The same content with other times, a tighter umask's modes and
	// another owner must give the same bytes.
	other := t.TempDir()
	old := syscall.Umask(0o077)
	writeTree(t, other, sample)
	syscall.Umask(old)
	stamp := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	err := filepath.Walk(other, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			perm := os.FileMode(0o600)
			if fi.IsDir() || fi.Mode()&0o100 != 0 {
				perm = 0o700
			}
			os.Chmod(p, perm)
			os.Chtimes(p, stamp, stamp)
		}
		os.Lchown(p, 1234, 5678) // works as root; harmless otherwise
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := pack(t, other, "web")
	if !bytes.Equal(first, second) {
		t.Fatalf("archives differ across mtimes, modes and owners (%d vs %d bytes)", len(first), len(second))
	}
	again, _ := pack(t, dir, "web")
	if !bytes.Equal(first, again) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
}

func TestWriteGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("GNU tar is needed: apt-get install tar")
		}
		t.Skip("GNU tar not found; install tar")
	}
	dir := t.TempDir()
	writeTree(t, dir, sample)
	data, _ := pack(t, dir, "web")
	file := filepath.Join(t.TempDir(), "r.tar.gz")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "--numeric-owner", "--quoting-style=literal", "-tzvf", file)
	cmd.Env = append(os.Environ(), "TZ=UTC") // dates are listed in local time
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzvf: %v\n%s", err, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Fields(line)
		// mode owner size date time name [-> target]
		got = append(got, fs[0]+" "+fs[1]+" "+fs[3]+" "+strings.Join(fs[5:], " "))
	}
	want := []string{
		"drwxr-xr-x 0/0 2000-01-01 web/",
		"-rw-r--r-- 0/0 2000-01-01 web/a.txt",
		"drwxr-xr-x 0/0 2000-01-01 web/a/",
		"drwxr-xr-x 0/0 2000-01-01 web/a/b/",
		"-rw-r--r-- 0/0 2000-01-01 web/a/b/c.txt",
		"drwxr-xr-x 0/0 2000-01-01 web/assets/",
		"-rw-r--r-- 0/0 2000-01-01 web/assets/a.css",
		"-rw-r--r-- 0/0 2000-01-01 web/assets/app-1a2b.js",
		"drwxr-xr-x 0/0 2000-01-01 web/bin/",
		"-rwxr-xr-x 0/0 2000-01-01 web/bin/server",
		"-rw-r--r-- 0/0 2000-01-01 web/empty.txt",
		"-rw-r--r-- 0/0 2000-01-01 web/index.html",
		"lrwxrwxrwx 0/0 2000-01-01 web/latest.js -> assets/app-1a2b.js",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tar -tzvf:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	extractsTo(t, file, "-z", dir)
}

// extractsTo checks that GNU tar, with option for the compression, extracts
// archive file to the tree of dir under web/.
func extractsTo(t *testing.T, file, option, dir string) {
	t.Helper()
	into := t.TempDir()
	if out, err := exec.Command("tar", option, "-xf", file, "-C", into).CombinedOutput(); err != nil {
		t.Fatalf("tar %s -xf: %v\n%s", option, err, out)
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

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "aaa"})
	files, err := Scan(context.Background(), dir, "web")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []File
		edit  func()
		want  string
	}{
		{"escaping link", []File{{Path: "web/x", Mode: 0o777, Link: "../../etc"}}, nil, "escapes"},
		{"bad path", []File{{Path: "../x", Mode: 0o644}}, nil, "climbs out"},
		{"duplicate", []File{files[0], files[0]}, nil, "duplicate"},
		{"not under prefix", []File{{Path: "api/a.txt", Size: 3, Mode: 0o644, SHA256: files[0].SHA256}}, nil, "not under web"},
		{"changed since scan", files, func() { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("bbb"), 0o644) }, "changed since it was scanned"},
		{"shrunk since scan", files, func() { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("b"), 0o644) }, "changed since it was scanned"},
		{"grown since scan", files, func() { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("aaab"), 0o644) }, "changed since it was scanned"},
		{"grown since listed, not hashed", []File{{Path: "web/a.txt", Size: 3, Mode: 0o644}}, func() { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("aaab"), 0o644) }, "changed since it was scanned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.edit != nil {
				tt.edit()
			}
			var b bytes.Buffer
			_, err := Write(context.Background(), &b, []Source{{Dir: dir, Prefix: "web", Files: tt.files}}, Gzip)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestManifest(t *testing.T) {
	m := &Manifest{
		Release: "20260101T000000Z-abc1234", Revision: "abc", Created: "2026-01-01T00:00:00Z",
		Files: []File{
			{Path: "api/server", Size: 3, Mode: 0o755, SHA256: hexsum("bin")},
			{Path: "web/a.js", Size: 1, Mode: 0o644, SHA256: hexsum("A")},
			{Path: "web/l", Mode: 0o777, Link: "a.js"},
			{Path: "webx", Size: 1, Mode: 0o644, SHA256: hexsum("x")},
		},
		Reused:  map[string]string{"api": "r0"},
		Base:    "r0",
		Reuse:   []Reuse{{File: File{Path: "api/server", Size: 3, Mode: 0o755, SHA256: hexsum("bin")}, From: "api/server"}},
		Archive: ArchiveInfo{SHA256: hexsum("z"), Size: 10, Files: 2},
	}
	var b bytes.Buffer
	if err := m.Encode(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadManifest(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, m)
	}
	if f, ok := m.Lookup("web/l"); !ok || f.Link != "a.js" {
		t.Errorf("Lookup(web/l) = %+v, %v", f, ok)
	}
	if _, ok := m.Lookup("web"); ok {
		t.Error("Lookup found a directory")
	}
	if got := m.Under("web"); len(got) != 2 || got[1].Path != "web/l" {
		t.Errorf("Under(web) = %+v", got)
	}
	for _, bad := range []string{
		`{"release":"r","files":[{"path":"../x","size":0,"mode":420}]}`,
		`{"release":"r","files":[{"path":"b","mode":420},{"path":"a","mode":420}]}`,
		`{"release":"r","reuse":[{"path":"a","mode":420,"from":"/etc/passwd"}]}`,
	} {
		if _, err := ReadManifest(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadManifest accepted %s", bad)
		}
	}
}

func TestWriteLongAndUnicodeNames(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("GNU tar is needed: apt-get install tar")
		}
		t.Skip("GNU tar not found; install tar")
	}
	long := strings.Repeat("deep/", 30) + "file-with-a-long-name.js"
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{long: "x", "menü/crème brûlée.txt": "y"})
	data, _ := pack(t, dir, "web")
	// gzip header: no name flag, zero mtime.
	if data[3]&0x08 != 0 || data[4]|data[5]|data[6]|data[7] != 0 {
		t.Errorf("gzip header has a name or a time: % x", data[:10])
	}
	again, _ := pack(t, dir, "web")
	if !bytes.Equal(data, again) {
		t.Error("long names gave different bytes")
	}
	file := filepath.Join(t.TempDir(), "r.tar.gz")
	os.WriteFile(file, data, 0o644)
	out, err := exec.Command("tar", "--quoting-style=literal", "-tzf", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tzf: %v\n%s", err, out)
	}
	for _, want := range []string{"web/" + long, "web/menü/crème brûlée.txt"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("tar -tzf does not list %s:\n%s", want, out)
		}
	}
}
