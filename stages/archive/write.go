package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Epoch is the modification time of every archive entry. A fixed time makes
// the archive depend on content only; 2000-01-01 rather than the Unix epoch
// because GNU tar warns about "implausibly old" zero timestamps. Extract
// with --touch where servers use mtimes for caching (nginx ETags).
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Source is one local directory packed under a release prefix.
type Source struct {
	Dir    string // local directory; may be "" when Files are only symlinks and empty files
	Prefix string // release path of Dir, e.g. "frontend"; "" for the release root
	Files  []File // entries to pack; their paths lie under Prefix
}

// local returns the on-disk path of f.
func (s Source) local(f File) (string, error) {
	rel := f.Path
	if s.Prefix != "" && s.Prefix != "." {
		var ok bool
		rel, ok = strings.CutPrefix(f.Path, s.Prefix+"/")
		if !ok {
			return "", fmt.Errorf("%s is not under %s", f.Path, s.Prefix)
		}
	}
	if s.Dir == "" {
		return "", fmt.Errorf("%s: no local directory to read it from", f.Path)
	}
	return filepath.Join(s.Dir, filepath.FromSlash(rel)), nil
}

// The gzip levels of the archive's members. klauspost/compress's gzip is
// readable by every gunzip and, at its default level, packed a 50 MB mixed
// tree at 156-166 MB/s against 27-30 MB/s for the standard library's
// default level, in 3 MB of heap; pgzip reached 256 MB/s but used 40 MB of
// heap. Files that are compressed already (photos, fonts, archives) gain
// nothing from deflate but still cost its CPU on both sides: runs of them
// go into members of their own, stored. BenchmarkCompressor on the 50 MB
// tree, CPU time per archive on a loaded 2-core machine: one default level
// for everything 832 ms (59.5% of the input), default+stored 616 ms
// (59.8%), default+Huffman-only 578 ms (59.6%), best speed for everything
// 486 ms (61.6%), best speed+stored 435 ms (61.9%). Best speed+stored
// halves the CPU for 2.4 points more bytes, which a 100 Mbit/s link sends
// in less time than the CPU saved; Huffman-only saved a tenth of a point
// on photos and fonts, whose inflate costs more than a stored block's
// copy. The benchmark swaps these variables.
var (
	packedLevel = gzip.BestSpeed
	storedLevel = gzip.NoCompression
)

// storedMin is the smallest compressed file stored as it is: below it, a
// member of its own would cost more than deflate loses on it.
const storedMin = 1 << 10

// compressedExts are the extensions of formats that carry their own
// compression, which deflate cannot shrink further.
var compressedExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true, ".avif": true, ".heic": true, ".jxl": true,
	".woff": true, ".woff2": true,
	".gz": true, ".tgz": true, ".br": true, ".zst": true, ".xz": true, ".bz2": true, ".lz4": true,
	".zip": true, ".jar": true, ".war": true, ".apk": true, ".7z": true, ".rar": true,
	".mp3": true, ".mp4": true, ".m4a": true, ".m4v": true, ".aac": true, ".ogg": true, ".oga": true, ".ogv": true,
	".opus": true, ".webm": true, ".mov": true, ".flac": true,
}

// Stored reports whether Write stores the file of that path and size
// without compressing it again: its format is compressed already.
func Stored(name string, size int64) bool {
	return size >= storedMin && compressedExts[strings.ToLower(path.Ext(name))]
}

// compressor is the archive's compression: it takes the tar stream and is
// told, before each file's entry, whether the file is compressed already.
type compressor interface {
	io.Writer
	use(stored bool) error
	Close() error
}

// codec makes the compressor of an archive written to w.
type codec func(w io.Writer) (compressor, error)

// gzipMembers is Write's codec: gzip members (see members).
func gzipMembers(w io.Writer) (compressor, error) {
	m := &members{w: w}
	return m, m.use(false)
}

// members writes a multi-member gzip stream, which gunzip and tar xzf read
// as one: each run of stored files in a member at storedLevel, the rest at
// packedLevel. Where the members begin depends on the entries alone, so
// the stream stays deterministic. Its two writers are reused from member
// to member: memory stays flat however many there are.
type members struct {
	w              io.Writer
	packed, stored *gzip.Writer
	cur            *gzip.Writer
	count          int
}

func (m *members) Write(p []byte) (int, error) { return m.cur.Write(p) }

// use ends the current member unless it is of the kind wanted, and starts
// one that is.
func (m *members) use(stored bool) error {
	want, level := &m.packed, packedLevel
	if stored {
		want, level = &m.stored, storedLevel
	}
	if m.cur != nil && m.cur == *want {
		return nil
	}
	if m.cur != nil {
		if err := m.cur.Close(); err != nil {
			return err
		}
	}
	if *want == nil {
		zw, err := gzip.NewWriterLevel(m.w, level)
		if err != nil {
			return err
		}
		*want = zw
	} else {
		(*want).Reset(m.w)
	}
	m.cur = *want
	m.count++
	return nil
}

// Close ends the last member.
func (m *members) Close() error {
	if m.cur == nil {
		if err := m.use(false); err != nil {
			return err
		}
	}
	return m.cur.Close()
}

const copyBuf = 256 << 10

// handoffDepth is how many chunks of the output may wait for their
// writer (see handoff).
const handoffDepth = 4

// Write streams a deterministic compressed tar of the sources' files to w:
// entries sorted by path, each directory before its content, owner 0:0
// without names, every time Epoch, modes normalised (0755 directories and
// executables, 0644 other files), PAX format, and files that are
// compressed already (Stored) in members of their own, stored as they are
// (gzip: headers with no name or time; zstd: raw blocks). The same files
// give the same bytes whatever their owners, mtimes or the umask. Memory
// does not grow with the size of the files: each is copied through in
// turn, and the output is hashed as it is written, on a goroutine of its
// own (see handoff), while the next files are read. Every file is hashed as
// it is read and must still have the size of its entry and, when it has
// one, its SHA-256; a file with none yet (List leaves them so) gets the
// one read, filled into its entry in sources. w is written by that
// goroutine alone, and never after Write returned.
func Write(ctx context.Context, w io.Writer, sources []Source, c Compression) (ArchiveInfo, error) {
	newCompressor := gzipMembers
	if c == Zstd {
		newCompressor = zstdMembers
	}
	info, err := write(ctx, w, sources, newCompressor)
	if c == Zstd {
		info.Compression = Zstd
	}
	return info, err
}

// write is Write with the compression newCompressor makes.
func write(ctx context.Context, w io.Writer, sources []Source, newCompressor codec) (ArchiveInfo, error) {
	type entry struct {
		f        File
		src, idx int // f is sources[src].Files[idx]
	}
	var entries []entry
	for i, s := range sources {
		for j, f := range s.Files {
			entries = append(entries, entry{f, i, j})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].f.Path < entries[j].f.Path })

	sum := sha256.New()
	count := &counter{}
	// The output is hashed and written while the next files are read and
	// compressed.
	out := newHandoff(io.MultiWriter(w, sum, count), copyBuf, handoffDepth)
	defer out.Abort() // on a failure; once closed, nothing
	zw, err := newCompressor(out)
	if err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
	}
	tw := tar.NewWriter(zw)
	chk := newChecker()
	dirs := map[string]bool{}
	copyBuffer := make([]byte, copyBuf)
	info := ArchiveInfo{}

	header := func(name string, typ byte, mode int64, size int64, link string) error {
		if err := chk.add(name, typ, link, mode); err != nil {
			return err
		}
		h := &tar.Header{
			Typeflag: typ,
			Name:     name,
			Linkname: link,
			Mode:     mode,
			Size:     size,
			ModTime:  Epoch,
			Format:   tar.FormatPAX,
		}
		if typ == tar.TypeDir {
			h.Name += "/"
		}
		return tw.WriteHeader(h)
	}
	// mkdirs emits the missing parents of name, outermost first.
	var mkdirs func(name string) error
	mkdirs = func(name string) error {
		d := path.Dir(name)
		if d == "." || dirs[d] {
			return nil
		}
		if err := mkdirs(d); err != nil {
			return err
		}
		dirs[d] = true
		return header(d, tar.TypeDir, ModeDir, 0, "")
	}

	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
		}
		f := e.f
		if err := mkdirs(f.Path); err != nil {
			return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
		}
		if f.IsLink() {
			if err := header(f.Path, tar.TypeSymlink, ModeLink, 0, f.Link); err != nil {
				return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
			}
			info.Files++
			continue
		}
		mode := int64(ModeFile)
		if f.Mode&0o111 != 0 {
			mode = ModeExec
		}
		// The previous entry's padding ends its member, then this entry
		// starts in a member of its kind.
		if err := tw.Flush(); err != nil {
			return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
		}
		if err := zw.use(Stored(f.Path, f.Size)); err != nil {
			return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
		}
		if err := header(f.Path, tar.TypeReg, mode, f.Size, ""); err != nil {
			return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
		}
		if f.Size > 0 {
			sum, err := copyFile(ctx, tw, sources[e.src], f, copyBuffer)
			if err != nil {
				return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
			}
			sources[e.src].Files[e.idx].SHA256 = sum
		}
		info.Files++
	}
	if err := chk.finish(); err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
	}
	if err := out.Close(); err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive: %w", err)
	}
	info.SHA256 = hex.EncodeToString(sum.Sum(nil))
	info.Size = count.n
	return info, nil
}

// copyFile copies f's content into the archive and returns its SHA-256.
// The file must still have the size it was listed with and, when it was
// hashed before, that hash, so the archive matches the manifest.
func copyFile(ctx context.Context, w io.Writer, s Source, f File, buf []byte) (string, error) {
	name, err := s.local(f)
	if err != nil {
		return "", err
	}
	file, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file any more", f.Path)
	}
	changed := func() error { return fmt.Errorf("%s changed since it was scanned (build still running?)", f.Path) }
	if st.Size() != f.Size {
		return "", changed()
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(ctxReader{ctx, file}, f.Size), buf)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != f.Size || (f.SHA256 != "" && sum != f.SHA256) {
		return "", changed()
	}
	return sum, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
