package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// checkName refuses a release path that is empty, absolute, not clean or
// climbs with "..": such a name could make an extractor write outside the
// release directory.
func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return fmt.Errorf("empty path")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%q: absolute path", name)
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		return fmt.Errorf("%q: path climbs out with ..", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%q: NUL in path", name)
	case path.Clean(name) != name:
		return fmt.Errorf("%q: path is not clean (want %q)", name, path.Clean(name))
	}
	return nil
}

// maxLinkHops bounds symlink expansion, as the kernel's ELOOP does.
const maxLinkHops = 40

// resolve follows name through the symlinks of a tree known only as data
// (links maps a link's path to its target) and reports an error when the
// path leaves the tree's root at any point. Resolving component by component
// catches escapes that a lexical check misses, e.g. "x -> l/.." with "l -> .".
func resolve(links map[string]string, name string) error {
	hops := 0
	var walk func(base string, target string) (string, error)
	walk = func(base, target string) (string, error) {
		if strings.HasPrefix(target, "/") {
			return "", fmt.Errorf("absolute target %q", target)
		}
		cur := base
		for _, c := range strings.Split(target, "/") {
			switch c {
			case "", ".":
				continue
			case "..":
				if cur == "" {
					return "", fmt.Errorf("target %q leaves the tree", target)
				}
				cur = path.Dir(cur)
				if cur == "." {
					cur = ""
				}
				continue
			}
			next := path.Join(cur, c)
			if t, ok := links[next]; ok {
				hops++
				if hops > maxLinkHops {
					return "", fmt.Errorf("too many levels of symbolic links")
				}
				r, err := walk(cur, t)
				if err != nil {
					return "", fmt.Errorf("through %s: %w", next, err)
				}
				cur = r
				continue
			}
			cur = next
		}
		return cur, nil
	}
	dir := path.Dir(name)
	if dir == "." {
		dir = ""
	}
	_, err := walk(dir, links[name])
	return err
}

// checkLinks resolves every symlink of a tree.
func checkLinks(links map[string]string) error {
	var errs []error
	for name, target := range links {
		if err := resolve(links, name); err != nil {
			errs = append(errs, fmt.Errorf("symlink %s -> %s escapes the release: %w", name, target, err))
		}
	}
	return errors.Join(errs...)
}

// checker validates a sequence of archive entries; Write and CheckEntries
// share it so that we never produce an archive we would refuse to extract.
type checker struct {
	seen  map[string]byte // path -> tar type flag
	links map[string]string
}

func newChecker() *checker {
	return &checker{seen: map[string]byte{}, links: map[string]string{}}
}

// add checks one entry. For hard links, target is the linked path.
func (c *checker) add(name string, typ byte, target string, mode int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	if mode&^0o777 != 0 {
		return fmt.Errorf("%s: mode %#o has setuid, setgid or sticky bits", name, mode)
	}
	if prev, dup := c.seen[name]; dup && (typ != tar.TypeDir || prev != tar.TypeDir) {
		return fmt.Errorf("%s: duplicate entry", name)
	}
	// No entry may be written through a symlink of the same archive: an
	// extractor would follow it (the classic "dir -> /etc, dir/passwd").
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if c.seen[d] == tar.TypeSymlink {
			return fmt.Errorf("%s: lies under symlink %s", name, d)
		}
		if t, ok := c.seen[d]; ok && t != tar.TypeDir {
			return fmt.Errorf("%s: lies under non-directory %s", name, d)
		}
	}
	switch typ {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		if target == "" {
			return fmt.Errorf("%s: symlink with empty target", name)
		}
		if strings.HasPrefix(target, "/") {
			return fmt.Errorf("symlink %s -> %s escapes the release: absolute target", name, target)
		}
		c.links[name] = target
	case tar.TypeLink:
		if err := checkName(target); err != nil {
			return fmt.Errorf("hard link %s: %w", name, err)
		}
		if c.seen[target] != tar.TypeReg {
			return fmt.Errorf("hard link %s -> %s: target is not an earlier regular file of the archive", name, target)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%s: device or fifo entries are refused", name)
	default:
		return fmt.Errorf("%s: entry type %q is refused", name, typ)
	}
	c.seen[name] = typ
	return nil
}

// finish checks what needs the whole archive: where every symlink leads.
func (c *checker) finish() error { return checkLinks(c.links) }

// CheckEntries reads a compressed tar, gzip or zstd, and refuses it if any
// entry could write or point outside the directory it is extracted into:
// absolute paths, ".." components, symlinks or hard links leading out,
// entries under a symlink, devices and fifos, setuid bits. It reads the
// whole stream.
func CheckEntries(r io.Reader) error {
	zr, err := decompress(r)
	if err != nil {
		return fmt.Errorf("check archive: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	c := newChecker()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("check archive: %w", err)
		}
		name := h.Name
		if h.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		typ := h.Typeflag
		if typ == '\x00' { // old-style regular file (tar.TypeRegA)
			typ = tar.TypeReg
		}
		if err := c.add(name, typ, h.Linkname, h.Mode); err != nil {
			return fmt.Errorf("check archive: %w", err)
		}
	}
	if err := c.finish(); err != nil {
		return fmt.Errorf("check archive: %w", err)
	}
	return nil
}

// decompress reads a gzip or zstd stream, told apart by its magic number.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil && len(magic) < 2 {
		return nil, fmt.Errorf("not a compressed archive: %w", err)
	}
	if bytes.Equal(magic, zstdMagic) {
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return gzip.NewReader(br)
}
