package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Run: go test -run xxx -bench . -benchmem ./stages/archive
//
// Trees are generated once per process from a seeded PRNG and removed at
// exit. MB/s is of uncompressed file content; peak-MB is the most heap in
// use above the level before the run; ratio-% is compressed/uncompressed;
// cpu-ms/op is the process's CPU time per archive.

var (
	benchRoot  string
	benchMu    sync.Mutex
	benchTrees = map[string]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

// benchTree returns a generated tree of about total bytes in n files: a
// realistic mix of compressible text (JS, CSS, HTML, SQL) and
// incompressible images, sizes log-spread from a few hundred bytes to a
// few megabytes.
func benchTree(b *testing.B, total int64, n int) string {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	key := fmt.Sprintf("%d-%d", total, n)
	if dir, ok := benchTrees[key]; ok {
		return dir
	}
	if benchRoot == "" {
		var err error
		if benchRoot, err = os.MkdirTemp("", "archive-bench-"); err != nil {
			b.Fatal(err)
		}
	}
	dir := filepath.Join(benchRoot, key)
	r := rand.New(rand.NewSource(42))
	weights := make([]float64, n)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(r.Float64() * math.Log(5000)) // 1..5000, log-uniform
		sum += weights[i]
	}
	exts := []string{".js", ".css", ".html", ".json", ".sql", ".png", ".jpg", ".woff2"}
	for i, w := range weights {
		size := int64(w / sum * float64(total))
		ext := exts[r.Intn(len(exts))]
		name := filepath.Join(dir, fmt.Sprintf("d%02d/s%d/f%05d%s", i%37, i%5, i, ext))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		var data []byte
		switch ext {
		case ".png", ".jpg", ".woff2":
			data = make([]byte, size)
			r.Read(data)
		default:
			data = fakeText(r, size)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	benchTrees[key] = dir
	return dir
}

// fakeText looks like minified-ish source: repeated keywords with varying
// identifiers and numbers, compressing to roughly a quarter like real JS.
func fakeText(r *rand.Rand, size int64) []byte {
	words := []string{"function", "return", "const", "let", "if", "else", "for", "this", "props", "state",
		"document", "querySelector", "addEventListener", "null", "undefined", "true", "false", "await", "async"}
	var sb strings.Builder
	sb.Grow(int(size) + 64)
	for int64(sb.Len()) < size {
		switch r.Intn(4) {
		case 0:
			fmt.Fprintf(&sb, "%s v%d=%d;", words[r.Intn(len(words))], r.Intn(500), r.Intn(100000))
		case 1:
			fmt.Fprintf(&sb, "%s(e%d){%s e%d.%s}\n", words[r.Intn(len(words))], r.Intn(50), words[r.Intn(len(words))], r.Intn(50), words[r.Intn(len(words))])
		default:
			sb.WriteString(words[r.Intn(len(words))])
			sb.WriteByte(' ')
		}
	}
	return []byte(sb.String()[:size])
}

// peakHeap samples heap object bytes until stop is called, returning the
// peak above the level at the start.
func peakHeap() (stop func() float64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	peak := base
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		s := []metrics.Sample{{Name: sample[0].Name}}
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(peak-base) / (1 << 20)
	}
}

func benchWrite(b *testing.B, dir string) {
	files, err := Scan(context.Background(), dir, "web")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	src := []Source{{Dir: dir, Prefix: "web", Files: files}}
	b.SetBytes(total)
	b.ResetTimer()
	stop := peakHeap()
	cpu0 := cpuTime()
	var info ArchiveInfo
	for i := 0; i < b.N; i++ {
		if info, err = Write(context.Background(), io.Discard, src, Gzip); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(stop(), "peak-MB")
	b.ReportMetric(float64(info.Size)/float64(total)*100, "ratio-%")
	b.ReportMetric(float64(len(files)), "files")
}

// cpuTime is the process's user and system time: on a shared machine a
// steadier measure of the work than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWrite packs trees of growing size: MB/s should hold and peak-MB
// should not grow with the tree.
func BenchmarkWrite(b *testing.B) {
	b.Run("frontend-dist", func(b *testing.B) {
		dir := filepath.Join("..", "..", "examples", "restaurant", "frontend", "dist")
		if _, err := os.Stat(dir); err != nil {
			b.Skip("no example frontend build; run its npm run build first")
		}
		benchWrite(b, dir)
	})
	for _, s := range []struct {
		name  string
		total int64
		n     int
	}{
		{"10MB-400files", 10 << 20, 400},
		{"50MB-2000files", 50 << 20, 2000},
		{"200MB-8000files", 200 << 20, 8000},
	} {
		b.Run(s.name, func(b *testing.B) { benchWrite(b, benchTree(b, s.total, s.n)) })
	}
}

// BenchmarkCompressor compares the gzip levels of the members on the 50 MB
// tree, whose images and fonts are compressed already: one level for
// every file, and the compressed files stored as they are or Huffman-coded
// only. The choice in write.go rests on it.
func BenchmarkCompressor(b *testing.B) {
	dir := benchTree(b, 50<<20, 2000)
	savedPacked, savedStored := packedLevel, storedLevel
	defer func() { packedLevel, storedLevel = savedPacked, savedStored }()
	for _, c := range []struct {
		name           string
		packed, stored int
	}{
		{"all-default", kgzip.DefaultCompression, kgzip.DefaultCompression},
		{"all-speed", kgzip.BestSpeed, kgzip.BestSpeed},
		{"default+stored", kgzip.DefaultCompression, kgzip.NoCompression},
		{"default+huffman", kgzip.DefaultCompression, kgzip.HuffmanOnly},
		{"speed+stored", kgzip.BestSpeed, kgzip.NoCompression},
	} {
		b.Run(c.name, func(b *testing.B) {
			packedLevel, storedLevel = c.packed, c.stored
			benchWrite(b, dir)
		})
	}
}

// BenchmarkScan measures parallel hashing of the 50 MB tree (page cache warm).
func BenchmarkScan(b *testing.B) {
	dir := benchTree(b, 50<<20, 2000)
	files, err := Scan(context.Background(), dir, "")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Scan(context.Background(), dir, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkZstdVsGzip compares, side by side on the 50 MB 2,000-file tree,
// the archive as Write makes it (gzip best speed, compressed files in
// stored members) with one zstd frame at zstd's fastest level: packing
// (cpu-ms/op, ratio-%), and unpacking as a server does, GNU tar with gzip
// or zstd into an empty directory (the wall time per op, and the unpacking
// processes' CPU as unpack-cpu-ms/op).
func BenchmarkZstdVsGzip(b *testing.B) {
	dir := benchTree(b, 50<<20, 2000)
	files, err := Scan(context.Background(), dir, "web")
	if err != nil {
		b.Fatal(err)
	}
	src := []Source{{Dir: dir, Prefix: "web", Files: files}}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	for _, c := range []struct {
		name  string
		codec codec
		tar   []string // GNU tar's option for the compression
		tool  string
	}{
		{"gzip-speed+stored", gzipMembers, []string{"-z"}, "gzip"},
		{"zstd-fastest", zstdFrame, []string{"--zstd"}, "zstd"},
		{"zstd-fastest+raw", zstdMembers, []string{"--zstd"}, "zstd"},
	} {
		var archive bytes.Buffer
		b.Run(c.name+"/pack", func(b *testing.B) {
			b.SetBytes(total)
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				archive.Reset()
				if _, err := write(context.Background(), &archive, src, c.codec); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(archive.Len())/float64(total)*100, "ratio-%")
		})
		b.Run(c.name+"/unpack", func(b *testing.B) {
			if _, err := exec.LookPath(c.tool); err != nil {
				b.Skipf("no %s on PATH: apt-get install -y %s", c.tool, c.tool)
			}
			b.SetBytes(total)
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				out := b.TempDir()
				cmd := exec.Command("tar", append(append([]string{"-x"}, c.tar...), "-f", "-", "-C", out)...)
				cmd.Stdin = bytes.NewReader(archive.Bytes())
				b.StartTimer()
				if msg, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("tar: %v\n%s", err, msg)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "unpack-cpu-ms/op")
		})
	}
}

// zstdFrame compresses the whole tar stream as one zstd frame at zstd's
// fastest level, which stores by itself the blocks it cannot shrink: what
// zstdMembers is measured against.
func zstdFrame(w io.Writer) (compressor, error) {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return zstdWriter{zw}, nil
}

type zstdWriter struct{ *zstd.Encoder }

func (zstdWriter) use(bool) error { return nil }
