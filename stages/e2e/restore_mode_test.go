package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestRestoreKeepsDatabaseModeAndOwner: the backup taken before migrating
// is owner-only, but restoring it after a failed migration must give the
// database back its mode and owner, or an app running as another user
// loses it. Run as root, the database belongs to another user (nobody).
func TestRestoreKeepsDatabaseModeAndOwner(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Restore Mode Guest")

	db := filepath.Join(p.Root, "shared", "data", "restaurant.sqlite3")
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		const nobody = 65534
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			if err := os.Chown(f, nobody, nobody); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	uid, gid := fileOwner(t, db)

	p.Write("backend/migrations/0003_broken.sql", "-- Broken on purpose.\nCREATE TABLE specials (id INTEGER PRIMARY KEY);\nALTER TABLE no_such_table ADD COLUMN x TEXT;\n")
	p.Commit("a broken migration")
	res := deployWith(t, p, pipeline.Options{})
	mustFail(t, res, exitcode.Failed, "migration failed", "restored")

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("restored database has mode %v, want -rw-r--r--", fi.Mode().Perm())
	}
	if u, g := fileOwner(t, db); u != uid || g != gid {
		t.Errorf("restored database belongs to %d:%d, want %d:%d", u, g, uid, gid)
	}
	if got := sqlite(t, p.Root, "SELECT count(*) FROM sqlite_master WHERE name = 'specials'"); got != "0" {
		t.Error("the failed migration's table exists")
	}
	mustHaveReservations(t, p, p.Root, guest)
	later := reserve(t, p.Port, "After Restore Mode Guest")
	mustHaveReservations(t, p, p.Root, guest, later)
}

// fileOwner is the uid and gid of path.
func fileOwner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}
