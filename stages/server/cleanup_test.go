package server

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

func TestPlanCleanup(t *testing.T) {
	ids := []string{id2, id4, id1, id3, "not-a-release", ".staging-x"}
	for _, tc := range []struct {
		name    string
		keep    int
		protect []string
		want    []string
	}{
		{"keep 2", 2, nil, []string{id2, id1}},
		{"keep all", 10, nil, nil},
		{"protect old previous", 2, []string{id4, id1}, []string{id2}},
		{"keep 0 is 1", 0, []string{id4}, []string{id3, id2, id1}},
		{"protect current when rolled back", 1, []string{id2, id1}, []string{id3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlanCleanup(ids, tc.keep, tc.protect); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseCleanup(t *testing.T) {
	out := "before free_kb=1000\nremoved " + id1 + "\nremoved-backup " + id1 + "\nremoved-incoming 2\nafter free_kb=1300\n"
	r, err := ParseCleanup([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := CleanupReport{Removed: []string{id1}, RemovedBackups: []string{id1}, RemovedIncoming: 2,
		FreeBeforeKB: 1000, FreeAfterKB: 1300, FreedKB: 300}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v", r)
	}
	for _, bad := range []string{"", "before free_kb=1\n", "before free_kb=x\nafter free_kb=1\n"} {
		if _, err := ParseCleanup([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestCleanupScript(t *testing.T) {
	l := newRoot(t)
	for _, id := range []string{id1, id2, id3, id4} {
		writeFile(t, filepath.Join(l.ReleaseDir(id), "big"), strings.Repeat("x", 64<<10))
		writeFile(t, l.SumsPath(id), "")
		writeFile(t, filepath.Join(l.BackupDir(id), "shared/db"), "db")
	}
	// current is id2 (a rollback happened), previous id1; keep 2 newest.
	mustRun(t, mustCmd(Switch(l, id2)), nil)
	writeFile(t, filepath.Join(l.StagingDir("20260105T000000Z-eeeeeee"), "half"), "x")
	writeFile(t, filepath.Join(l.BackupDir("20250101T000000Z-0000000"), "db"), "orphan")
	// No deploy holds the lock: young or old, no upload is in progress.
	writeFile(t, filepath.Join(l.IncomingDir(), "old.archive"), "old")
	writeFile(t, filepath.Join(l.IncomingDir(), "fresh.archive"), "fresh")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(l.IncomingDir(), "old.archive"), old, old); err != nil {
		t.Fatal(err)
	}

	// Protect only id1: the script protects current by itself.
	cmd, err := cmdOf(Cleanup(l, CleanupSpec{Keep: 1, Protect: []string{id1}}))
	res := mustRun(t, cmd, err)
	r, err := ParseCleanup(res.Stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Stdout)
	}
	if want := PlanCleanup([]string{id1, id2, id3, id4}, 1, []string{id1, id2}); !reflect.DeepEqual(r.Removed, want) {
		t.Errorf("removed %v, plan says %v", r.Removed, want)
	}
	for _, id := range []string{id1, id2, id4} {
		if _, err := os.Stat(l.ReleaseDir(id)); err != nil {
			t.Errorf("kept release %s: %v", id, err)
		}
	}
	for _, gone := range []string{l.ReleaseDir(id3), l.SumsPath(id3), l.BackupDir(id3), l.StagingDir("20260105T000000Z-eeeeeee"),
		l.BackupDir("20250101T000000Z-0000000"), filepath.Join(l.IncomingDir(), "old.archive"), filepath.Join(l.IncomingDir(), "fresh.archive")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s not removed", gone)
		}
	}
	if r.RemovedIncoming != 2 || len(r.RemovedBackups) != 2 {
		t.Errorf("report %+v", r)
	}
	if _, err := Cleanup(l, CleanupSpec{Protect: []string{"../x"}}); err == nil {
		t.Error("bad protected id accepted")
	}
}

// TestCleanupOrderAndExpect: the releases removed come newest first, as
// the state written beside the cleanup expects them, whatever the
// protected ones between them; an expectation that differs fails with
// ExitCleanupUnexpected, the releases removed all the same. Entries of
// releases/ that are not release ids are never touched.
func TestCleanupOrderAndExpect(t *testing.T) {
	ids := []string{id1, id2, id3, id4}
	for _, tc := range []struct {
		name    string
		keep    int
		protect []string
		expect  []string
		ok      bool
	}{
		{"all but current", 1, nil, []string{id3, id2, id1}, true},
		{"protected between", 1, []string{id2}, []string{id3, id1}, true},
		{"keep more than there are", 9, nil, []string{}, true},
		{"wrong order", 1, nil, []string{id1, id2, id3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRoot(t)
			for _, id := range ids {
				writeFile(t, filepath.Join(l.ReleaseDir(id), "f"), id)
				writeFile(t, l.SumsPath(id), "")
			}
			writeFile(t, filepath.Join(l.ReleasesDir(), "20260101T000000Z-NOTHEX0", "f"), "x")
			writeFile(t, filepath.Join(l.ReleasesDir(), "notes.txt"), "x")
			mustRun(t, mustCmd(Switch(l, id4)), nil)
			op, err := Cleanup(l, CleanupSpec{Keep: tc.keep, Protect: tc.protect, Expect: tc.expect})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := op.Decode(run(t, op.Cmd))
			var unexpected *CleanupUnexpectedError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("cleanup: %v", err)
			case !tc.ok && !errors.As(err, &unexpected):
				t.Fatalf("cleanup: %v, want it to say it removed other releases than expected", err)
			case !tc.ok:
				rep = unexpected.Report
			}
			want := PlanCleanup(ids, tc.keep, append(tc.protect, id4))
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(rep.Removed, want) {
				t.Errorf("removed %v, want %v (newest first)", rep.Removed, want)
			}
			for _, name := range []string{"20260101T000000Z-NOTHEX0", "notes.txt"} {
				if _, err := os.Stat(filepath.Join(l.ReleasesDir(), name)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// TestCleanupDockerSteps runs cleanup against a fake docker and sudo as a
// user other than root: the docker steps run only when asked for.
func TestCleanupDockerSteps(t *testing.T) {
	l := newRoot(t)
	for _, tc := range []struct {
		spec  CleanupSpec
		calls string
	}{
		{CleanupSpec{}, ""},
		{CleanupSpec{DockerLogs: true, DockerPrune: true},
			"id [-u]\nsudo [-n] [sh] [-c] [truncate -c -s 0 /var/lib/docker/containers/*/*-json.log]\ndocker [system] [prune] [-f]\n"},
		{CleanupSpec{DockerPrune: true}, "docker [system] [prune] [-f]\n"},
	} {
		bin, log := fakeTools(t, map[string]string{"docker": "", "sudo": "", "id": "echo 1000"})
		mustRun(t, withPath(mustCmd(Cleanup(l, tc.spec)).Cmd, bin+":"+os.Getenv("PATH")), nil)
		if got := calls(t, log); got != tc.calls {
			t.Errorf("%+v: calls\n%s\nwant\n%s", tc.spec, got, tc.calls)
		}
	}
}

// TestCleanupRemovesReleaseImages builds two images FROM scratch tagged
// with release ids, as a compose file tagging with ${STAGECOACH_RELEASE}
// does, and checks that cleanup removes the image of the release it
// removes and keeps the other.
func TestCleanupRemovesReleaseImages(t *testing.T) {
	testenv.RequireTool(t, "docker", "apt-get install -y docker.io")
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		msg := "the docker engine does not answer (start it): " + remote.Tail(string(out), 3)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	repo := fmt.Sprintf("stagecoach-cleanup-test-%d", os.Getpid())
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), "FROM scratch\nCOPY hello /hello\n")
	writeFile(t, filepath.Join(ctx, "hello"), "hello\n")
	for _, id := range []string{id1, id2} {
		if out, err := exec.Command("docker", "build", "-q", "-t", repo+":"+id, ctx).CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", repo+":"+id1, repo+":"+id2).Run() })

	l := newRoot(t)
	for _, id := range []string{id1, id2} {
		writeFile(t, filepath.Join(l.ReleaseDir(id), "f"), "f")
	}
	mustRun(t, mustCmd(Switch(l, id2)), nil)
	mustRun(t, mustCmd(Cleanup(l, CleanupSpec{Keep: 1, Protect: []string{id2}, ReleaseImages: true})).Cmd, nil)

	images := func() string {
		out, err := exec.Command("docker", "images", "--format", "{{.Tag}}", repo).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := images(); got != id2 {
		t.Fatalf("images left of %s: %q, want only %s", repo, got, id2)
	}
}
