package server

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseLock(t *testing.T) {
	info := `{"holder":"alice@laptop","pid":123,"started":"2026-01-01T12:03:04Z","token":"t1","command":"deploy"}`
	for _, c := range []struct {
		name    string
		out     string
		held    bool
		heldFor time.Duration
		hbAge   time.Duration
		holder  string
		bad     bool
	}{
		{name: "free", out: "stagecoach-lock free\n"},
		{name: "held", out: "stagecoach-lock created=400\nstagecoach-lock now=1000 heartbeat=990\n" + info + "\n",
			held: true, heldFor: 600 * time.Second, hbAge: 10 * time.Second, holder: "alice@laptop"},
		{name: "no info yet", out: "stagecoach-lock created=1000\nstagecoach-lock now=1000 heartbeat=1000\n", held: true},
		{name: "clock went back", out: "stagecoach-lock created=2000\nstagecoach-lock now=1000 heartbeat=1000\n", held: true},
		{name: "empty", out: "", bad: true},
		{name: "garbage", out: "hello\n", bad: true},
		{name: "truncated", out: "stagecoach-lock created=1\n", bad: true},
		{name: "bad info", out: "stagecoach-lock created=1\nstagecoach-lock now=1 heartbeat=1\n{\n", bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := ParseLock([]byte(c.out))
			if c.bad {
				if err == nil {
					t.Fatalf("accepted: %+v", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Held != c.held || st.HeldFor != c.heldFor {
				t.Fatalf("%+v", st)
			}
			if c.held && (st.Holder.Age != c.hbAge || st.Holder.Info.Holder != c.holder) {
				t.Fatalf("holder %+v", st.Holder)
			}
		})
	}
}

func TestReadLock(t *testing.T) {
	l := newRoot(t)
	st, err := ParseLock(mustRun(t, ReadLock(l).Cmd, nil).Stdout)
	if err != nil || st.Held {
		t.Fatalf("free lock read as %+v, %v", st, err)
	}
	cmd, err := cmdOf(Lock(l, LockInfo{Holder: "bob@ci", PID: 7, Started: time.Now(), Token: "tok", Command: "deploy"}))
	mustRun(t, cmd, err)
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{l.LockDir(), filepath.Join(l.LockDir(), "info.json")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	st, err = ParseLock(mustRun(t, ReadLock(l).Cmd, nil).Stdout)
	if err != nil || !st.Held || st.Holder.Info.Holder != "bob@ci" {
		t.Fatalf("%+v %v", st, err)
	}
	if st.HeldFor < 119*time.Minute || st.Holder.Age < 119*time.Minute {
		t.Errorf("held for %s, heartbeat %s ago; want about 2h", st.HeldFor, st.Holder.Age)
	}
	// Reading leaves the lock as it was.
	if _, err := os.Stat(filepath.Join(l.LockDir(), "token")); err != nil {
		t.Error(err)
	}
}

// writeRelease writes files into releases/<id> and its sums list, as a
// staged release would have them.
func writeRelease(t testing.TB, l Layout, id string, files map[string][]byte) {
	t.Helper()
	dir := l.ReleaseDir(id)
	for p, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sums, links, err := TreeLists(tree(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{l.SumsPath(id): sums, l.LinksPath(id): links} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyReleaseParallel checks that hashing in several processes finds
// exactly what one process finds.
func TestVerifyReleaseParallel(t *testing.T) {
	l := newRoot(t)
	const id = "20260101T000000Z-aaaaaaa"
	files := map[string][]byte{}
	for i := 0; i < 300; i++ {
		files[fmt.Sprintf("d%d/f %03d.txt", i%7, i)] = []byte(strings.Repeat(fmt.Sprint(i), i))
	}
	writeRelease(t, l, id, files)
	for _, jobs := range []int{0, 1, 3} {
		if _, err := run(t, mustCmd(VerifyRelease(l, id, VerifySpec{Jobs: jobs})).Cmd); err != nil {
			t.Fatalf("jobs=%d: intact release fails: %v", jobs, err)
		}
	}
	dir := l.ReleaseDir(id)
	writeFile(t, filepath.Join(dir, "d3/f 010.txt"), "tampered")
	writeFile(t, filepath.Join(dir, "d5/f 299.txt"), "tampered too")
	writeFile(t, filepath.Join(dir, "d0/new.php"), "<?php")
	if err := os.Remove(filepath.Join(dir, "d1/f 001.txt")); err != nil {
		t.Fatal(err)
	}
	want := TreeReport{Modified: []string{"d3/f 010.txt", "d5/f 299.txt"}, Missing: []string{"d1/f 001.txt"}, Extra: []string{"d0/new.php"}}
	for _, jobs := range []int{0, 1, 3} {
		res, err := run(t, mustCmd(VerifyRelease(l, id, VerifySpec{Jobs: jobs})).Cmd)
		if ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("jobs=%d: %v", jobs, err)
		}
		if got := ParseTreeReport(res.Stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("jobs=%d: report %+v, want %+v", jobs, got, want)
		}
	}
}

// BenchmarkCheckIntegrity verifies a live release of 2,000 files and 50 MB
// (log-uniform sizes, page cache warm) as the cron check does: one
// sha256sum process against one per CPU. Its figures are in docs/check.md.
func BenchmarkCheckIntegrity(b *testing.B) {
	l := Layout{Root: filepath.Join(b.TempDir(), "root")}
	const id = "20260101T000000Z-aaaaaaa"
	r := rand.New(rand.NewSource(42))
	const n, total = 2000, 50 << 20
	weights := make([]float64, n)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(r.Float64() * math.Log(5000))
		sum += weights[i]
	}
	files := map[string][]byte{}
	var size int64
	for i, w := range weights {
		data := make([]byte, int64(w/sum*total))
		r.Read(data)
		files[fmt.Sprintf("d%02d/s%d/f%05d.bin", i%37, i%5, i)] = data
		size += int64(len(data))
	}
	writeRelease(b, l, id, files)
	for _, jobs := range []int{1, runtime.NumCPU()} {
		name := "single-sha256sum"
		if jobs > 1 {
			name = fmt.Sprintf("parallel-%d", jobs)
		}
		b.Run(name, func(b *testing.B) {
			cmd, err := cmdOf(VerifyRelease(l, id, VerifySpec{Jobs: jobs}))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ReportMetric(n, "files")
			for i := 0; i < b.N; i++ {
				if out, err := runBench(cmd.Script); err != nil {
					b.Fatalf("verify: %v\n%s", err, out)
				}
			}
		})
	}
}

func runBench(script string) ([]byte, error) {
	return exec.Command("/bin/sh", "-c", script).CombinedOutput()
}
