package archive

// Diff splits next into the files to send and those the previous release
// already holds with the same SHA-256, size and mode, wherever they were:
// the server hard-links those. A file at the same path is preferred as the
// source, else the first in path order. Symlinks are always sent (they are
// tiny and cannot be hard-linked meaningfully), and so are empty files, so
// that unrelated empty files never share an inode. With no previous
// manifest everything is sent.
func Diff(next []File, prev *Manifest) (send []File, reuse []Reuse) {
	type key struct {
		sum  string
		size int64
		mode uint32
	}
	byKey := map[key]string{}
	if prev != nil {
		for _, f := range prev.Files {
			if !linkable(f) {
				continue
			}
			k := key{f.SHA256, f.Size, f.Mode}
			if _, ok := byKey[k]; !ok {
				byKey[k] = f.Path
			}
		}
	}
	for _, f := range next {
		if !linkable(f) {
			send = append(send, f)
			continue
		}
		k := key{f.SHA256, f.Size, f.Mode}
		from, ok := byKey[k]
		if !ok {
			send = append(send, f)
			continue
		}
		if same, ok := prev.Lookup(f.Path); ok && !same.IsLink() && (key{same.SHA256, same.Size, same.Mode}) == k {
			from = f.Path
		}
		reuse = append(reuse, Reuse{File: f, From: from})
	}
	return send, reuse
}

// linkable reports whether Diff may take f from a previous release: a
// regular file with content.
func linkable(f File) bool { return !f.IsLink() && f.Size > 0 }

// MayReuse reports whether Diff could find one of files in prev, going by
// size and mode alone: only then must their SHA-256 be known before they
// are packed. Write hashes the others as it reads them.
func MayReuse(files []File, prev *Manifest) bool {
	if prev == nil {
		return false
	}
	type key struct {
		size int64
		mode uint32
	}
	held := map[key]bool{}
	for _, f := range prev.Files {
		if linkable(f) {
			held[key{f.Size, f.Mode}] = true
		}
	}
	for _, f := range files {
		if linkable(f) && held[key{f.Size, f.Mode}] {
			return true
		}
	}
	return false
}
