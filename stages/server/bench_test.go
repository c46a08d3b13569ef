package server

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkStageReuse2000 stages a release that ships one file and
// hard-links 2,000 unchanged ones from the previous release, then verifies
// all of them: the server-side cost of a typical small deploy.
func BenchmarkStageReuse2000(b *testing.B) {
	root := filepath.Join(b.TempDir(), "root")
	l := Layout{Root: root}
	if out, err := exec.Command("/bin/sh", "-c", Prepare(l).Cmd.Script).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	src := b.TempDir()
	var reuse []LinkPair
	for i := 0; i < 2000; i++ {
		p := fmt.Sprintf("static/d%02d/f%04d.txt", i%50, i)
		benchWrite(b, filepath.Join(src, p), fmt.Sprint("content ", i))
		reuse = append(reuse, LinkPair{p, p})
	}
	benchWrite(b, filepath.Join(src, "bin/server"), "v1")
	benchStage(b, l, id1, src, StageSpec{ID: id1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("20260102T%06dZ-bbbbbbb", i)
		b.StopTimer()
		benchWrite(b, filepath.Join(src, "bin/server"), id)
		b.StartTimer()
		benchStage(b, l, id, src, StageSpec{ID: id, PrevID: id1, Reuse: reuse}, "./bin/server")
	}
}

func benchStage(b *testing.B, l Layout, id, src string, s StageSpec, only ...string) {
	b.Helper()
	b.StopTimer()
	args := []string{"-czf", l.IncomingPath(id), "-C", src}
	if only == nil {
		only = []string{"."}
	}
	if out, err := exec.Command("tar", append(args, only...)...).CombinedOutput(); err != nil {
		b.Fatalf("tar: %v %s", err, out)
	}
	entries := tree(b, src)
	sums, links, err := TreeLists(entries)
	if err != nil {
		b.Fatal(err)
	}
	benchWrite(b, l.SumsPath(id), string(sums))
	benchWrite(b, l.LinksPath(id), string(links))
	cmd, err := cmdOf(StageRelease(l, s))
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	c := exec.Command("/bin/sh", "-c", cmd.Script)
	c.Stdin = cmd.Stdin
	if out, err := c.CombinedOutput(); err != nil {
		b.Fatalf("stage: %v %s", err, out)
	}
}
