package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
)

// Scan walks dir and returns its files and symlinks, sorted, with paths
// prefixed by prefix (the component's place in the release; "" for the
// root), every file hashed: List, then Hash, waited for.
func Scan(ctx context.Context, dir string, prefix string) ([]File, error) {
	files, err := List(ctx, dir, prefix)
	if err != nil {
		return nil, err
	}
	if err := Hash(ctx, dir, prefix, files).Wait(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	return files, nil
}

// List is Scan but for the hashing: regular files have their size and
// mode, and only empty ones their SHA-256. Symlinks are recorded, not
// followed, and refused when they lead out of dir; device files, sockets
// and fifos are refused.
func List(ctx context.Context, dir string, prefix string) ([]File, error) {
	if prefix == "." {
		prefix = ""
	}
	if prefix != "" {
		if err := checkName(prefix); err != nil {
			return nil, fmt.Errorf("scan %s: prefix: %w", dir, err)
		}
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("scan %s: not a directory", dir)
	}

	var files []File
	links := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			links[rel] = target
			files = append(files, File{Path: path.Join(prefix, rel), Mode: ModeLink, Link: target})
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := uint32(ModeFile)
			if info.Mode().Perm()&0o111 != 0 {
				mode = ModeExec
			}
			f := File{Path: path.Join(prefix, rel), Size: info.Size(), Mode: mode}
			if f.Size == 0 {
				f.SHA256 = emptySHA256 // nothing to read, nor for Write to hash
			}
			files = append(files, f)
		default:
			return fmt.Errorf("%s is a %s; only regular files, directories and symlinks can be deployed", rel, kind(t))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	if err := checkLinks(links); err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	// WalkDir visits in lexical order of each directory's names, which is
	// not the order of full paths ("a/b" sorts after "a.txt"): sort.
	SortFiles(files)
	return files, nil
}

// emptySHA256 is the SHA-256 of no bytes.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func kind(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + t.String() + ")"
}

// Hashing is the hashing of listed files under way, by one worker per
// CPU. It keeps the hashes to itself until Wait or Stop fills them in, so
// that the files' other fields can be read meanwhile.
type Hashing struct {
	files  []File
	sums   []string // files[i]'s, once hashed
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the first failure; set before done is closed
}

// Hash starts hashing the regular files of files, which List found in dir
// under prefix, that have no SHA-256 yet.
func Hash(ctx context.Context, dir, prefix string, files []File) *Hashing {
	ctx, cancel := context.WithCancel(ctx)
	h := &Hashing{files: files, sums: make([]string, len(files)), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.err = hashAll(ctx, Source{Dir: dir, Prefix: prefix}, files, h.sums)
	}()
	return h
}

// Wait waits until every file is hashed and fills in their SHA-256, or
// returns the first failure.
func (h *Hashing) Wait() error {
	<-h.done
	h.cancel()
	if h.err != nil {
		return h.err
	}
	h.fill()
	return nil
}

// Stop ends the hashing and fills in the hashes made so far. The other
// files keep no SHA-256, for Write to fill in as it reads them; a file the
// hashing failed on fails there.
func (h *Hashing) Stop() {
	h.cancel()
	<-h.done
	h.fill()
}

func (h *Hashing) fill() {
	for i, sum := range h.sums {
		if sum != "" {
			h.files[i].SHA256 = sum
		}
	}
}

// hashAll puts into sums[i] the SHA-256 of every regular file files[i]
// that has none, with one worker per CPU. A file whose size is not the
// one listed fails it.
func hashAll(ctx context.Context, src Source, files []File, sums []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	workers := runtime.NumCPU()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for i := range jobs {
				f := files[i]
				name, err := src.local(f)
				if err != nil {
					fail(err)
					continue
				}
				sum, n, err := hashFile(ctx, name, buf)
				if err == nil && n != f.Size {
					err = fmt.Errorf("%d bytes, listed with %d: it changed while it was scanned (build still running?)", n, f.Size)
				}
				if err != nil {
					fail(fmt.Errorf("hash %s: %w", f.Path, err))
					continue
				}
				sums[i] = sum
			}
		}()
	}
feed:
	for i, f := range files {
		if f.IsLink() || f.SHA256 != "" {
			continue
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// FileSHA256 returns the hex SHA-256 of a file's content.
func FileSHA256(name string) (string, error) {
	sum, _, err := hashFile(context.Background(), name, make([]byte, 32<<10))
	return sum, err
}

func hashFile(ctx context.Context, name string, buf []byte) (string, int64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, f}, buf)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
