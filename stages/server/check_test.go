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

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
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
// exactly what one process finds, with openssl's fast pass and with an
// openssl that fails, whose files sha256sum then checks.
func TestVerifyReleaseParallel(t *testing.T) {
	testenv.RequireTool(t, "openssl", "apt-get install openssl")
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "openssl"), "#!/bin/sh\nexit 1\n")
	if err := os.Chmod(filepath.Join(broken, "openssl"), 0o755); err != nil {
		t.Fatal(err)
	}
	hashers := map[string]string{"openssl": "", "failing openssl": "PATH=" + broken + ":$PATH\nexport PATH\n"}
	l := newRoot(t)
	const id = "20260101T000000Z-aaaaaaa"
	files := map[string][]byte{}
	for i := 0; i < 300; i++ {
		files[fmt.Sprintf("d%d/f %03d.txt", i%7, i)] = []byte(strings.Repeat(fmt.Sprint(i), i))
	}
	// A name openssl could take for an option.
	files["d2/-n.txt"] = []byte("dash")
	writeRelease(t, l, id, files)
	verify := func(jobs int, hasher string) (remote.Result, error) {
		cmd := mustCmd(VerifyRelease(l, id, VerifySpec{Jobs: jobs})).Cmd
		cmd.Script = hashers[hasher] + cmd.Script
		return run(t, cmd)
	}
	for hasher := range hashers {
		for _, jobs := range []int{0, 1, 3} {
			if _, err := verify(jobs, hasher); err != nil {
				t.Fatalf("%s, jobs=%d: intact release fails: %v", hasher, jobs, err)
			}
		}
	}
	dir := l.ReleaseDir(id)
	writeFile(t, filepath.Join(dir, "d3/f 010.txt"), "tampered")
	writeFile(t, filepath.Join(dir, "d5/f 299.txt"), "tampered too")
	writeFile(t, filepath.Join(dir, "d2/-n.txt"), "dish")
	writeFile(t, filepath.Join(dir, "d0/new.php"), "<?php")
	if err := os.Remove(filepath.Join(dir, "d1/f 001.txt")); err != nil {
		t.Fatal(err)
	}
	want := TreeReport{Modified: []string{"d2/-n.txt", "d3/f 010.txt", "d5/f 299.txt"}, Missing: []string{"d1/f 001.txt"}, Extra: []string{"d0/new.php"}}
	for hasher := range hashers {
		for _, jobs := range []int{0, 1, 3} {
			res, err := verify(jobs, hasher)
			if ExitCode(err) != ExitTreeMismatch {
				t.Fatalf("%s, jobs=%d: %v", hasher, jobs, err)
			}
			if got := ParseTreeReport(res.Stdout); !reflect.DeepEqual(got, want) {
				t.Errorf("%s, jobs=%d: report %+v, want %+v", hasher, jobs, got, want)
			}
		}
	}
}

// BenchmarkCheckIntegrity verifies a live release of 2,000 files and 50 MB
// (log-uniform sizes, page cache warm) as the cron check does: with
// sha256sum alone and with openssl's fast pass, in one process and in one
// per CPU. Its figures are in the README's Cost section.
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
	// The sha256sum runs hide openssl behind one that fails, so that every
	// file goes to sha256sum as on a server without openssl.
	noOpenSSL := b.TempDir()
	if err := os.WriteFile(filepath.Join(noOpenSSL, "openssl"), []byte("#!/bin/sh\nexit 127\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, hasher := range []string{"sha256sum", "openssl"} {
		for _, jobs := range []int{1, runtime.NumCPU()} {
			name := fmt.Sprintf("%s/jobs-%d", hasher, jobs)
			b.Run(name, func(b *testing.B) {
				cmd, err := cmdOf(VerifyRelease(l, id, VerifySpec{Jobs: jobs}))
				if err != nil {
					b.Fatal(err)
				}
				if hasher == "sha256sum" {
					cmd.Script = "PATH=" + noOpenSSL + ":$PATH\nexport PATH\n" + cmd.Script
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
}

func runBench(script string) ([]byte, error) {
	return exec.Command("/bin/sh", "-c", script).CombinedOutput()
}
