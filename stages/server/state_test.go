package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	id1 = "20260101T000000Z-aaaaaaa"
	id2 = "20260102T000000Z-bbbbbbb"
	id3 = "20260103T000000Z-ccccccc"
	id4 = "20260104T000000Z-ddddddd"
)

func statuses(s *State) string {
	var b []string
	for _, r := range s.Releases {
		b = append(b, r.ID[len(r.ID)-1:]+"="+r.Status)
	}
	return strings.Join(b, " ")
}

func TestRecordDeploy(t *testing.T) {
	type step struct {
		id, result string
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		current  string
		revision string
		previous string
		statuses string
	}{
		{"first", []step{{id1, ResultSuccess}}, id1, "rev-a", "", "a=live"},
		{"two", []step{{id1, ResultSuccess}, {id2, ResultSuccess}}, id2, "rev-b", id1, "a=previous b=live"},
		{"three", []step{{id1, ResultSuccess}, {id2, ResultSuccess}, {id3, ResultSuccess}}, id3, "rev-c", id2, "a=retired b=previous c=live"},
		{"failed keeps current", []step{{id1, ResultSuccess}, {id2, ResultSuccess}, {id3, ResultFailed}}, id2, "rev-b", id1, "a=previous b=live c=failed"},
		{"rolled back", []step{{id1, ResultSuccess}, {id2, ResultSuccess}, {id3, ResultRolledBack}}, id2, "rev-b", id1, "a=previous b=live c=failed"},
		{"no change", []step{{id1, ResultSuccess}, {id1, ResultNoChange}}, id1, "rev-a", "", "a=live"},
		{"previous skips failed", []step{{id1, ResultSuccess}, {id2, ResultFailed}, {id3, ResultSuccess}}, id3, "rev-c", id1, "a=previous b=failed c=live"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &State{App: "x"}
			for _, st := range tc.steps {
				rev := "rev-" + st.id[len(st.id)-1:]
				if _, ok := s.Release(st.id); !ok {
					s.AddRelease(Release{ID: st.id, Revision: rev})
				}
				if err := s.RecordDeploy(Deploy{ID: st.id, Revision: rev, Result: st.result}); err != nil {
					t.Fatal(err)
				}
			}
			if s.Current != tc.current || s.Revision != tc.revision {
				t.Errorf("current %s revision %s, want %s %s", s.Current, s.Revision, tc.current, tc.revision)
			}
			prev, ok := s.Previous()
			if prev.ID != tc.previous || ok != (tc.previous != "") {
				t.Errorf("previous %q %v, want %q", prev.ID, ok, tc.previous)
			}
			if got := statuses(s); got != tc.statuses {
				t.Errorf("statuses %q, want %q", got, tc.statuses)
			}
			if lg, ok := s.LastGood(); !ok || lg.ID != tc.current {
				t.Errorf("last good %q, want %q", lg.ID, tc.current)
			}
		})
	}
}

func TestPreviousAfterRollback(t *testing.T) {
	s := &State{}
	for _, id := range []string{id1, id2, id3} {
		s.AddRelease(Release{ID: id})
		if err := s.RecordDeploy(Deploy{ID: id, Result: ResultSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	// Roll back by hand from c to b: c stays previous until marked failed.
	if err := s.Promote(id2); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeploy(Deploy{ID: id3, Result: ResultRolledBack}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Previous(); p.ID != id1 {
		t.Errorf("previous after rollback = %q, want %q (%s)", p.ID, id1, statuses(s))
	}
}

func TestRecordDeployErrors(t *testing.T) {
	s := &State{}
	if err := s.RecordDeploy(Deploy{ID: id1, Result: ResultSuccess}); err == nil {
		t.Error("success of an unknown release accepted")
	}
	if err := s.RecordDeploy(Deploy{ID: id1, Result: "great"}); err == nil {
		t.Error("unknown result accepted")
	}
}

func TestDeployHistoryCapped(t *testing.T) {
	s := &State{}
	s.AddRelease(Release{ID: id1})
	for i := 0; i < MaxDeploys+20; i++ {
		if err := s.RecordDeploy(Deploy{ID: id1, Result: ResultNoChange, BytesSent: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Deploys) != MaxDeploys || s.Deploys[0].BytesSent != 20 {
		t.Errorf("history %d entries starting at %d", len(s.Deploys), s.Deploys[0].BytesSent)
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := &State{App: "restaurant"}
	s.AddRelease(Release{ID: id2, Revision: "b", Created: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
	s.AddRelease(Release{ID: id1, Revision: "a"})
	if s.Releases[0].ID != id1 {
		t.Fatal("releases not sorted")
	}
	if err := s.RecordDeploy(Deploy{ID: id2, Revision: "b", User: "alice", Duration: 1500 * time.Millisecond, Result: ResultSuccess}); err != nil {
		t.Fatal(err)
	}
	b1, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseState("state.json", b1)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Errorf("not stable:\n%s\n%s", b1, b2)
	}
	if back.Version != StateVersion || back.Deploys[0].Duration != 1500*time.Millisecond {
		t.Errorf("round trip lost data: %+v", back)
	}
	empty, _ := (&State{}).Marshal()
	if !bytes.Contains(empty, []byte(`"releases": []`)) {
		t.Errorf("empty state: %s", empty)
	}
}

func TestParseStateCorrupt(t *testing.T) {
	for _, in := range []string{"", "{", `{"releases": 3}`} {
		_, err := ParseState("/srv/app/.stagecoach/state.json", []byte(in))
		if err == nil || !strings.Contains(err.Error(), "state file /srv/app/.stagecoach/state.json is corrupt") || !strings.Contains(err.Error(), "move it aside") {
			t.Errorf("ParseState(%q) = %v", in, err)
		}
	}
	if _, err := ParseState("s", []byte(`{"version": 99}`)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("future version: %v", err)
	}
}

func TestRecordManualRollback(t *testing.T) {
	s := &State{}
	for i, id := range []string{id1, id2, id3} {
		s.AddRelease(Release{ID: id, Revision: string(rune('a' + i))})
		if err := s.RecordDeploy(Deploy{ID: id, Revision: string(rune('a' + i)), Result: ResultSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordDeploy(Deploy{ID: id2, Revision: "b", Result: ResultRollback}); err != nil {
		t.Fatal(err)
	}
	if s.Current != id2 || s.Revision != "b" {
		t.Errorf("after rolling back to %s: current %s, revision %q (want b: the next deploy diffs against it)", id2, s.Current, s.Revision)
	}
	if p, _ := s.Previous(); p.ID != id3 {
		t.Errorf("previous = %q, want %q (%s)", p.ID, id3, statuses(s))
	}
	if err := s.RecordDeploy(Deploy{ID: "20260101T000000Z-0000000", Result: ResultRollback}); err == nil {
		t.Error("rollback to an unknown release accepted")
	}
}

func TestReadLive(t *testing.T) {
	l := newRoot(t)
	read := func() Live {
		t.Helper()
		live, err := ParseLive(mustRun(t, ReadLive(l).Cmd, nil).Stdout)
		if err != nil {
			t.Fatal(err)
		}
		return live
	}
	if got := read(); len(got.State) != 0 || got.Current != "" || len(got.Manifest) != 0 {
		t.Fatalf("nothing deployed: %+v", got)
	}
	if live, err := ParseLive(mustRun(t, ReadLive(Layout{Root: l.Root + "/missing"}).Cmd, nil).Stdout); err != nil || live.Current != "" {
		t.Fatalf("missing root: %+v %v", live, err)
	}
	mustMkRelease(t, l, id1)
	mustRun(t, mustCmd(Switch(l, id1)), nil)
	writeFile(t, l.StatePath(), `{"version":1}`)
	writeFile(t, l.ManifestPath(id1), `{"release":"`+id1+`"}`)
	got := read()
	if string(got.State) != `{"version":1}` || got.Current != id1 || string(got.Manifest) != `{"release":"`+id1+`"}` {
		t.Fatalf("deployed: %+v", got)
	}
	if _, err := ParseLive([]byte("no separators")); err == nil {
		t.Error("accepted output without separators")
	}
}

// TestWriteState: the state is replaced whole with mode 0644, and a stream
// cut short leaves the old state as it was.
func TestWriteState(t *testing.T) {
	l := newRoot(t)
	mustRun(t, WriteState(l, []byte(`{"version":1}`)), nil)
	cut := WriteState(l, []byte(`{"version":2}`))
	cut.Stdin = strings.NewReader(`{"vers`)
	if _, err := run(t, cut); err == nil {
		t.Fatal("a truncated state was accepted")
	}
	data, err := os.ReadFile(l.StatePath())
	if err != nil || string(data) != `{"version":1}` {
		t.Fatalf("state after a cut write: %q %v", data, err)
	}
	if fi, _ := os.Stat(l.StatePath()); fi.Mode().Perm() != 0o644 {
		t.Errorf("state mode %v", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(l.StatePath() + ".tmp.*"); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
