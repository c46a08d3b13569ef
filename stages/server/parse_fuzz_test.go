package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fuzz targets of the parsers of what the server prints. Their seed
// corpora in testdata/fuzz are real outputs: the state.json of a local
// deploy history (successes, a no-change, a rollback, a failed health with a
// failed rollback), what read_live.sh, lock.sh, df, verify_tree.sh and
// cleanup.sh printed against that deploy root. Every target checks that its
// parser does not panic and that what it accepts survives a round trip
// through the format it reads.

const statePath = "/srv/app/.stagecoach/state.json"

// FuzzParseState: a state file that parses marshals to bytes that parse
// back to the same bytes; an error names the file.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"app":"restaurant","current":"","releases":[],"deploys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(statePath, data)
		if err != nil {
			if !strings.Contains(err.Error(), statePath) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		b1, err := s.Marshal()
		if err != nil {
			return // e.g. a duration JSON cannot hold; never written by Marshal
		}
		s2, err := ParseState(statePath, b1)
		if err != nil {
			t.Fatalf("Marshal wrote a state ParseState refuses: %v\n%s", err, b1)
		}
		b2, err := s2.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("state round trip is not stable (%v):\n%s\n---\n%s", err, b1, b2)
		}
	})
}

// FuzzParseLive: what ParseLive accepts, printed again as read_live.sh
// prints it, parses to the same value.
func FuzzParseLive(f *testing.F) {
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("{}\x00releases/20261128T122605Z-b609e69\x00{\"release\":\"20261128T122605Z-b609e69\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		live, err := ParseLive(data)
		if err != nil {
			return
		}
		if bytes.IndexByte(live.State, 0) >= 0 {
			t.Fatalf("state holds a NUL: %q", live.State)
		}
		cur := ""
		if live.Current != "" {
			if err := ValidID(live.Current); err != nil {
				t.Fatalf("current: %v", err)
			}
			cur = "releases/" + live.Current
		}
		again := append(append(append(append([]byte(nil), live.State...), 0), cur...), 0)
		again = append(again, live.Manifest...)
		live2, err := ParseLive(again)
		if err != nil || !reflect.DeepEqual(normLive(live), normLive(live2)) {
			t.Fatalf("live round trip: %v\n%+v\n%+v", err, live, live2)
		}
	})
}

func normLive(l Live) Live {
	if len(l.State) == 0 {
		l.State = nil
	}
	if len(l.Manifest) == 0 {
		l.Manifest = nil
	}
	return l
}

// holderReport prints a lock holder as lock.sh's report does: the server's
// clock and the heartbeat, then info.json.
func holderReport(t *testing.T, h *LockHeld) []byte {
	t.Helper()
	js, err := json.Marshal(h.Info)
	if err != nil {
		t.Fatalf("lock info does not marshal: %v", err)
	}
	return fmt.Appendf(nil, "stagecoach-lock now=%d heartbeat=0\n%s\n", int64(h.Age/time.Second), js)
}

// sameHolder compares two holders, their info as JSON (times from
// different zones compare unequal with reflect).
func sameHolder(t *testing.T, a, b *LockHeld) bool {
	t.Helper()
	ja, _ := json.Marshal(a.Info)
	jb, _ := json.Marshal(b.Info)
	return a.Age == b.Age && bytes.Equal(ja, jb)
}

// FuzzParseLockHeld: a holder report that parses has an age of zero or
// more, in whole seconds, and prints again to the same holder.
func FuzzParseLockHeld(f *testing.F) {
	f.Add([]byte("stagecoach-lock now=10 heartbeat=4\n{\"holder\":\"alice@laptop\",\"pid\":123}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseLockHeld(data)
		if err != nil {
			return
		}
		if h.Age < 0 || h.Age%time.Second != 0 {
			t.Fatalf("age %v is negative or not whole seconds", h.Age)
		}
		_ = h.Describe(30 * time.Second)
		h2, err := ParseLockHeld(holderReport(t, h))
		if err != nil || !sameHolder(t, h, h2) {
			t.Fatalf("holder round trip: %v\n%+v\n%+v", err, h, h2)
		}
	})
}

// FuzzParseLock: a lock report that parses is free or names its holder,
// with durations of zero or more in whole seconds, and prints again (as
// lock.sh read prints it) to the same status.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte("stagecoach-lock free\n"))
	f.Add([]byte("stagecoach-lock created=4\nstagecoach-lock now=10 heartbeat=6\n{\"holder\":\"alice@laptop\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseLock(data)
		if err != nil {
			return
		}
		if !st.Held {
			if st.Holder != nil || st.HeldFor != 0 {
				t.Fatalf("a free lock with a holder: %+v", st)
			}
			return
		}
		if st.Holder == nil || st.HeldFor < 0 || st.HeldFor%time.Second != 0 {
			t.Fatalf("held lock %+v: no holder, or a bad duration", st)
		}
		// created = now - HeldFor, now = Age (heartbeat 0): holderReport's clock.
		now := int64(st.Holder.Age / time.Second)
		report := append(fmt.Appendf(nil, "stagecoach-lock created=%d\n", now-int64(st.HeldFor/time.Second)), holderReport(t, st.Holder)...)
		st2, err := ParseLock(report)
		if err != nil || !st2.Held || st2.HeldFor != st.HeldFor || !sameHolder(t, st.Holder, st2.Holder) {
			t.Fatalf("lock round trip: %v\n%q\n%+v\n%+v", err, report, st, st2)
		}
	})
}

// formatTreeReport prints r as verify_tree.sh does.
func formatTreeReport(r TreeReport) []byte {
	var b bytes.Buffer
	for _, k := range []struct {
		kind  string
		paths []string
	}{{"modified", r.Modified}, {"missing", r.Missing}, {"extra", r.Extra}, {"badlink", r.BadLinks}} {
		for _, p := range k.paths {
			b.WriteString(k.kind + " " + p + "\n")
		}
	}
	return b.Bytes()
}

// FuzzParseTreeReport: the parsed report prints again to itself, and its
// summary does not panic.
func FuzzParseTreeReport(f *testing.F) {
	f.Add([]byte("modified frontend/index.html\nmissing a b\nextra x\nbadlink data\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := ParseTreeReport(data)
		_ = r.String()
		if r.Empty() != (len(formatTreeReport(r)) == 0) {
			t.Fatalf("Empty() = %v for %+v", r.Empty(), r)
		}
		if r2 := ParseTreeReport(formatTreeReport(r)); !reflect.DeepEqual(r, r2) {
			t.Fatalf("tree report round trip:\n%+v\n%+v", r, r2)
		}
	})
}

// formatCleanup prints r as cleanup.sh does.
func formatCleanup(r CleanupReport) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "before free_kb=%d\n", r.FreeBeforeKB)
	for _, id := range r.Removed {
		fmt.Fprintf(&b, "removed %s\n", id)
	}
	for _, id := range r.RemovedBackups {
		fmt.Fprintf(&b, "removed-backup %s\n", id)
	}
	fmt.Fprintf(&b, "removed-incoming %d\n", r.RemovedIncoming)
	fmt.Fprintf(&b, "after free_kb=%d\n", r.FreeAfterKB)
	return b.Bytes()
}

// FuzzParseCleanup: a report that parses frees zero or more and prints
// again to itself; an error quotes the output.
func FuzzParseCleanup(f *testing.F) {
	f.Add([]byte("before free_kb=100\nremoved 20261128T122605Z-b609e69\nremoved-incoming 2\nafter free_kb=150\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseCleanup(data)
		if err != nil {
			return
		}
		if r.FreedKB < 0 {
			t.Fatalf("freed %d KB", r.FreedKB)
		}
		r2, err := ParseCleanup(formatCleanup(r))
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("cleanup round trip: %v\n%+v\n%+v", err, r, r2)
		}
	})
}

// FuzzParseDiskFree: a df report that parses prints again, as `df -Pk`
// does, to the same usage.
func FuzzParseDiskFree(f *testing.F) {
	f.Add([]byte("Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264212084 16392524  79108740      18% /\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseDiskFree(data)
		if err != nil {
			return
		}
		again := fmt.Appendf(nil, "Filesystem 1024-blocks Used Available Capacity Mounted on\n%s %d %d %d 1%% %s\n",
			u.Filesystem, u.TotalKB, u.UsedKB, u.AvailKB, u.Mount)
		u2, err := ParseDiskFree(again)
		if err != nil || u != u2 {
			t.Fatalf("df round trip: %v\n%q\n%+v\n%+v", err, again, u, u2)
		}
	})
}

// FuzzParseStatus: service status of compose (docker inspect lines) and
// systemd (systemctl show blocks), printed again in the same format with
// a block before and after (so that no value is at either end of the
// output, where ParseStatus trims space), parses to the same services.
func FuzzParseStatus(f *testing.F) {
	f.Add(ManagerCompose, []byte("app\trunning\thealthy\nworker\trunning\t\n"))
	f.Add(ManagerSystemd, []byte("Id=app.service\nActiveState=active\nSubState=running\n"))
	f.Fuzz(func(t *testing.T, manager string, data []byte) {
		st, err := ParseStatus(manager, data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		switch manager {
		case ManagerCompose:
			b.WriteString("first\trunning\thealthy\n")
			for _, s := range st {
				b.WriteString(s.Name + "\t" + s.State + "\t" + s.Health + "\n")
			}
			b.WriteString("last\trunning\thealthy\n")
		case ManagerSystemd:
			b.WriteString("Id=first\nActiveState=active\nSubState=running\n\n")
			for _, s := range st {
				b.WriteString("Id=" + s.Name + "\nActiveState=" + s.State + "\nSubState=" + s.Health + "\n\n")
			}
			b.WriteString("Id=last\nActiveState=active\nSubState=running\n")
		default:
			t.Fatalf("manager %q has a status", manager)
		}
		st2, err := ParseStatus(manager, b.Bytes())
		if err != nil || len(st2) != len(st)+2 || len(st) > 0 && !reflect.DeepEqual(st, st2[1:len(st2)-1]) {
			t.Fatalf("status round trip: %v\n%q\n%+v\n%+v", err, b.Bytes(), st, st2)
		}
	})
}

// TestLockAgesDoNotOverflow: clocks far apart (FuzzParseLockHeld's
// heartbeat=10000000000 against now=0) gave an age that overflowed into
// 2346317h, making a lock with a future heartbeat look stale; ages are
// clamped now, to 0 for a heartbeat ahead of the clock.
func TestLockAgesDoNotOverflow(t *testing.T) {
	h, err := ParseLockHeld([]byte("stagecoach-lock now=0000000000 heartbeat=10000000000"))
	if err != nil || h.Age != 0 {
		t.Errorf("future heartbeat: age %v, %v; want 0", h, err)
	}
	h, err = ParseLockHeld([]byte("stagecoach-lock now=9223372036854775807 heartbeat=-9223372036854775808"))
	if err != nil || h.Age != maxSeconds {
		t.Errorf("clocks as far apart as int64 goes: %+v, %v; want age %v", h, err, maxSeconds)
	}
	st, err := ParseLock([]byte("stagecoach-lock created=-9223372036854775808\nstagecoach-lock now=9223372036854775807 heartbeat=9223372036854775807\n"))
	if err != nil || st.HeldFor != maxSeconds || st.Holder.Age != 0 {
		t.Errorf("lock held since the start of int64: %+v, %v", st, err)
	}
}
