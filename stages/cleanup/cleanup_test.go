package cleanup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/cleanup"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// rel is the n-th release id (1-based), ids sorting in n's order: a real
// deploy's ids taken within one second would not.
func rel(n int) string { return fmt.Sprintf("20260101T0000%02dZ-%07x", n, n) }

func rels(ns ...int) []string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, rel(n))
	}
	return ids
}

// host is one host's releases before a cleanup: 1..n, with the live and
// previous ones (0: none) and the releases that have a database backup.
type host struct {
	n, live, prev int
	backups       []int
}

// seed lays out h on root as deploys would have: a directory and a
// manifest per release, backups, current, and the state knowing it all.
func seed(t *testing.T, root string, h host) {
	t.Helper()
	l := server.Layout{Root: root}
	st := &server.State{Version: server.StateVersion, App: "shop"}
	for i := 1; i <= h.n; i++ {
		id := rel(i)
		status := server.StatusRetired
		switch i {
		case h.live:
			status, st.Current = server.StatusLive, id
		case h.prev:
			status = server.StatusPrevious
		}
		st.AddRelease(server.Release{ID: id, Revision: fmt.Sprint(i), Status: status})
		write(t, filepath.Join(l.ReleaseDir(id), "index.html"), id)
		write(t, l.ManifestPath(id), "{}")
	}
	for _, i := range h.backups {
		write(t, filepath.Join(l.BackupDir(rel(i)), "shared", "data", "db"), rel(i))
	}
	data, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write(t, l.StatePath(), string(data))
	if h.live > 0 {
		if err := os.Symlink("releases/"+rel(h.live), l.CurrentLink()); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// open seeds every host, then connects them and reads their state as a
// deploy would before cleaning up.
func open(t *testing.T, keep int, hosts ...host) (*runtest.Env, *run.Context) {
	t.Helper()
	e := runtest.New(t, runtest.Options{Hosts: len(hosts), Environment: fmt.Sprintf("    keep_releases: %d\n", keep)})
	for i, h := range hosts {
		seed(t, e.Roots[i], h)
	}
	rc := e.Open(t, run.Options{})
	ctx := context.Background()
	var err error
	if rc.Hosts, err = rc.Fleet.Connect(ctx, rc.Env.Hosts, rc.Env.Root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close(rc.Hosts) })
	if err := rc.Each(ctx, "read state of", func(ctx context.Context, h *fleet.Host) error { return h.LoadState(ctx, "shop") }); err != nil {
		t.Fatal(err)
	}
	return e, rc
}

// onDisk lists the release directories on root.
func onDisk(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range entries {
		ids = append(ids, en.Name())
	}
	return ids
}

func sorted(ids []string) []string {
	ids = append([]string(nil), ids...)
	sort.Strings(ids)
	return ids
}

func TestCleanupKeepsReleases(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keep        int
		host        host
		kept        []string // releases left, oldest first
		backupsGone []string
	}{
		{"keeps the newest", 3, host{n: 5, live: 5, prev: 4, backups: []int{1, 4}}, rels(3, 4, 5), rels(1)},
		// Newer releases that failed count as newest, yet never push the
		// live and previous ones out.
		{"never the live or previous", 2, host{n: 5, live: 2, prev: 1}, rels(1, 2, 4, 5), nil},
		{"first deploy's release alone", 3, host{n: 1, live: 1}, rels(1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rc := open(t, tc.keep, tc.host)
			root := e.Roots[0]
			if err := (cleanup.Step{}).Run(context.Background(), rc); err != nil {
				t.Fatalf("cleanup: %v\n%s", err, e.Log)
			}
			if got := onDisk(t, root); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("releases on disk %q, want %q", got, tc.kept)
			}
			if got := releaseIDs(e.State(t, 0)); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("state knows %q, want %q", got, tc.kept)
			}
			h := rc.Hosts[0]
			if got := sorted(releaseIDs(h.State)); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("state in memory knows %q, want %q", got, tc.kept)
			}
			rep := rc.Report.Host(h).Cleanup
			if rep == nil {
				t.Fatal("no cleanup report")
			}
			removed := 0
			for i := 1; i <= tc.host.n; i++ {
				id := rel(i)
				if _, err := os.Stat(h.Layout.ManifestPath(id)); os.IsNotExist(err) != !contains(tc.kept, id) {
					t.Errorf("manifest of %s: %v", id, err)
				}
				if !contains(tc.kept, id) {
					removed++
				}
			}
			if len(rep.Removed) != removed || !reflect.DeepEqual(rep.RemovedBackups, tc.backupsGone) {
				t.Errorf("report %+v, want %d removed and backups %q", rep, removed, tc.backupsGone)
			}
			// The state is written only when cleanup forgot a release.
			if n := e.Fake(0).Count(h.Layout.StatePath()); n != min(removed, 1) {
				t.Errorf("state saved %d times after removing %d releases", n, removed)
			}
		})
	}
}

// releaseIDs lists the releases s knows, in its order.
func releaseIDs(s *server.State) []string {
	var ids []string
	for _, r := range s.Releases {
		ids = append(ids, r.ID)
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestCleanupEachHostByItsOwnState: hosts with different histories each
// keep their own releases, and only those that removed some save.
func TestCleanupEachHostByItsOwnState(t *testing.T) {
	e, rc := open(t, 2, host{n: 4, live: 4, prev: 3}, host{n: 2, live: 2, prev: 1}, host{n: 4, live: 1})
	if err := (cleanup.Step{}).Run(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{rels(3, 4), rels(1, 2), rels(1, 3, 4)} {
		if got := onDisk(t, e.Roots[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("host %d keeps %q, want %q", i, got, want)
		}
		saved := e.Fake(i).Count(rc.Hosts[i].Layout.StatePath()) > 0
		if saved != (i != 1) {
			t.Errorf("host %d: state saved %v", i, saved)
		}
	}
}

func TestCleanupFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		host  host
		rules func(f *remotetest.Fake, l server.Layout)
		want  string
	}{
		{"the script fails", host{n: 5, live: 5},
			func(f *remotetest.Fake, _ server.Layout) {
				f.On("clean up old releases").Exit(1, "rm: cannot remove: Read-only file system")
			},
			"clean up deploy@web1: clean up old releases"},
		{"its output is cut", host{n: 5, live: 5},
			func(f *remotetest.Fake, _ server.Layout) {
				f.On("clean up old releases").Stdout([]byte("before free_kb=1\nremoved " + rel(1) + "\n"))
			},
			"cleanup output is incomplete"},
		{"saving the state fails", host{n: 5, live: 5},
			func(f *remotetest.Fake, l server.Layout) {
				f.On(l.StatePath()).Exit(1, "No space left on device")
			},
			"write state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rc := open(t, 3, tc.host)
			tc.rules(e.Fake(0), rc.Hosts[0].Layout)
			before := releaseIDs(e.State(t, 0))
			err := (cleanup.Step{}).Run(context.Background(), rc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("cleanup = %v, want %q", err, tc.want)
			}
			if got := releaseIDs(e.State(t, 0)); !reflect.DeepEqual(got, before) {
				t.Errorf("state file changed to %q after a failure", got)
			}
		})
	}
}

// TestCleanupRefusesABadStateCurrent: an id from a damaged state never
// reaches the script as a release to protect.
func TestCleanupRefusesABadStateCurrent(t *testing.T) {
	e, rc := open(t, 3, host{n: 2, live: 2})
	rc.Hosts[0].State.Current = "../../etc"
	err := (cleanup.Step{}).Run(context.Background(), rc)
	if err == nil || !strings.Contains(err.Error(), "protected release") {
		t.Fatalf("cleanup = %v, want the protected release refused", err)
	}
	if n := e.Fake(0).Count("clean up"); n != 0 {
		t.Errorf("the script ran %d times", n)
	}
}

// TestStepName: the report and the plugin hooks (before-cleanup) use it.
func TestStepName(t *testing.T) {
	if s := (cleanup.Step{}).String(); s != "cleanup" {
		t.Errorf("String() = %q", s)
	}
}
