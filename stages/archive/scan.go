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
// root). Files are hashed in parallel by runtime.NumCPU workers. Symlinks
// are recorded, not followed, and refused when they lead out of dir; device
// files, sockets and fifos are refused.
func Scan(ctx context.Context, dir string, prefix string) ([]File, error) {
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
	var local []string // on-disk path of files[i]
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
			local = append(local, p)
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := uint32(ModeFile)
			if info.Mode().Perm()&0o111 != 0 {
				mode = ModeExec
			}
			files = append(files, File{Path: path.Join(prefix, rel), Size: info.Size(), Mode: mode})
			local = append(local, p)
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
	if err := hashAll(ctx, files, local); err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	// WalkDir visits in lexical order of each directory's names, which is
	// not the order of full paths ("a/b" sorts after "a.txt"): sort.
	SortFiles(files)
	return files, nil
}

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

// hashAll fills in SHA256 (and the size actually read) of every regular
// file, with one worker per CPU.
func hashAll(ctx context.Context, files []File, local []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	workers := runtime.NumCPU()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for i := range jobs {
				sum, n, err := hashFile(ctx, local[i], buf)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("hash %s: %w", files[i].Path, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				files[i].SHA256, files[i].Size = sum, n
			}
		}()
	}
feed:
	for i := range files {
		if files[i].IsLink() {
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
