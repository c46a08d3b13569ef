// Package archive makes the deterministic release archive and its manifest:
// it hashes build outputs, decides which files the previous release already
// has, writes a reproducible tar.gz of the rest and checks archives for
// entries that could write outside a release.
package archive

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// File is one entry of a release: a regular file or a symbolic link.
// Directories are implied by the paths of their content; empty directories
// are not carried (as in git).
type File struct {
	Path   string `json:"path"`             // slash-separated, relative to the release root
	Size   int64  `json:"size"`             // bytes; 0 for symlinks
	Mode   uint32 `json:"mode"`             // 0644 or 0755 for files, 0777 for symlinks
	SHA256 string `json:"sha256,omitempty"` // hex digest of the content; empty for symlinks
	Link   string `json:"link,omitempty"`   // symlink target, only for symlinks
}

// IsLink reports whether f is a symbolic link.
func (f File) IsLink() bool { return f.Link != "" }

// Normalised modes: everything in a release is owned by the deploy user and
// readable by the web server; only the executable bit survives from the source.
const (
	ModeFile = 0o644
	ModeExec = 0o755
	ModeDir  = 0o755
	ModeLink = 0o777
)

// Reuse is a file the previous release already holds with the same content
// and mode: the server hard-links it from From instead of receiving it.
type Reuse struct {
	File
	From string `json:"from"` // path in the previous release
}

// ArchiveInfo describes a written archive.
type ArchiveInfo struct {
	SHA256 string `json:"sha256"` // of the compressed bytes, as shipped
	Size   int64  `json:"size"`   // compressed bytes
	Files  int    `json:"files"`  // files and symlinks in the archive (directories not counted)
	// Compression is Zstd, or empty for Gzip (as manifests had it before
	// zstd): see Codec.
	Compression Compression `json:"compression,omitempty"`
}

// Codec is the archive's compression.
func (a ArchiveInfo) Codec() Compression {
	if a.Compression == "" {
		return Gzip
	}
	return a.Compression
}

// Compression is how an archive's tar stream is compressed.
type Compression string

const (
	// Gzip is the compression every server can unpack.
	Gzip Compression = "gzip"
	// Zstd unpacks with a tenth of gzip's CPU; only for servers with zstd.
	Zstd Compression = "zstd"
)

// Ext is the file name extension of an archive with this compression.
func (c Compression) Ext() string {
	if c == Zstd {
		return ".tar.zst"
	}
	return ".tar.gz"
}

// Manifest is the full content of one release: every file with its hash,
// including the files that are reused rather than sent.
type Manifest struct {
	Release  string `json:"release"`
	Revision string `json:"revision"`
	Created  string `json:"created"` // RFC 3339, UTC
	Files    []File `json:"files"`   // sorted by Path
	// Reused maps a component's dest to the release its files were taken
	// from unchanged, instead of being packed again.
	Reused map[string]string `json:"reused,omitempty"`
	// Base is the release that the Reuse entries link from; empty when
	// nothing is reused.
	Base    string      `json:"base,omitempty"`
	Reuse   []Reuse     `json:"reuse,omitempty"`
	Archive ArchiveInfo `json:"archive"`
}

// Encode writes m as indented JSON.
func (m *Manifest) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encode manifest %s: %w", m.Release, err)
	}
	return nil
}

// ReadManifest decodes a manifest written by Encode and checks that its
// paths are safe and sorted, so later steps can rely on both.
func ReadManifest(r io.Reader) (*Manifest, error) {
	var m Manifest
	// Unknown fields are ignored: the previous release's manifest may have
	// been written by a newer version.
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	for i, f := range m.Files {
		if err := checkName(f.Path); err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", m.Release, err)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return nil, fmt.Errorf("read manifest %s: files not sorted or duplicated at %q", m.Release, f.Path)
		}
	}
	for _, r := range m.Reuse {
		if err := checkName(r.Path); err != nil {
			return nil, fmt.Errorf("read manifest %s: reuse: %w", m.Release, err)
		}
		if err := checkName(r.From); err != nil {
			return nil, fmt.Errorf("read manifest %s: reuse %s: %w", m.Release, r.Path, err)
		}
	}
	return &m, nil
}

// Lookup returns the file at path, or false.
func (m *Manifest) Lookup(path string) (File, bool) {
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Path >= path })
	if i < len(m.Files) && m.Files[i].Path == path {
		return m.Files[i], true
	}
	return File{}, false
}

// Under returns the files whose path lies under dir ("" or "." for all),
// in order.
func (m *Manifest) Under(dir string) []File {
	if dir == "" || dir == "." {
		return append([]File(nil), m.Files...)
	}
	prefix := dir + "/"
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Path >= prefix })
	var out []File
	for ; i < len(m.Files) && len(m.Files[i].Path) > len(prefix) && m.Files[i].Path[:len(prefix)] == prefix; i++ {
		out = append(out, m.Files[i])
	}
	return out
}

// SortFiles sorts files by path.
func SortFiles(files []File) {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
}
