package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestBackupRestore(t *testing.T) {
	for _, withSQLite := range []bool{true, false} {
		t.Run(fmt.Sprint("sqlite3=", withSQLite), func(t *testing.T) {
			if _, err := exec.LookPath("sqlite3"); withSQLite && err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("sqlite3 CLI missing: apt-get install sqlite3")
				}
				t.Skip("install the sqlite3 CLI to test online backups")
			}
			l := newRoot(t)
			db := filepath.Join(l.Root, "shared/data/app.sqlite3")
			files := []string{"shared/data/app.sqlite3", "shared/data/new.sqlite3"}
			if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
				t.Fatal(err)
			}
			if withSQLite {
				if out, err := exec.Command("sqlite3", db, "PRAGMA journal_mode=WAL; CREATE TABLE t(v); INSERT INTO t VALUES('before');").CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			} else {
				writeFile(t, db, "before")
				writeFile(t, db+"-wal", "wal before")
			}
			cmd, err := BackupFiles(l, id2, files)
			if !withSQLite {
				cmd = withPath(cmd, pathWithout(t, "sqlite3"))
			}
			mustRun(t, cmd, err)
			// The migration changes the database and creates another one.
			if withSQLite {
				if out, err := exec.Command("sqlite3", db, "UPDATE t SET v='after';").CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			} else {
				writeFile(t, db, "after")
				writeFile(t, db+"-shm", "shm after")
			}
			writeFile(t, filepath.Join(l.Root, "shared/data/new.sqlite3"), "created by migration")

			mustRun(t, mustCmd(RestoreFiles(l, id2, files)), nil)
			if withSQLite {
				out, err := exec.Command("sqlite3", db, "SELECT v FROM t;").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "before" {
					t.Errorf("restored db says %q %v", out, err)
				}
			} else {
				for name, want := range map[string]string{db: "before", db + "-wal": "wal before"} {
					if b, _ := os.ReadFile(name); string(b) != want {
						t.Errorf("%s = %q", name, b)
					}
				}
				if _, err := os.Stat(db + "-shm"); !os.IsNotExist(err) {
					t.Error("stale -shm kept")
				}
			}
			if _, err := os.Stat(filepath.Join(l.Root, "shared/data/new.sqlite3")); !os.IsNotExist(err) {
				t.Error("file absent before the migration still there")
			}
			if _, err := os.Stat(filepath.Join(l.Root, "shared/data/new.sqlite3.before-rollback")); err != nil {
				t.Error("file absent before the migration not moved aside")
			}
			if _, err := run(t, mustCmd(RestoreFiles(l, id1, files))); err == nil || !strings.Contains(err.Error(), "no backup of") {
				t.Errorf("restore without backup: %v", err)
			}
		})
	}
}

// TestRestoreKeepsModeAndOwner: the backup is owner-only, but the restored
// file gets the live file's mode and owner (an app running as another user
// must keep its database), or, when the migration removed the live file,
// those it had when it was backed up.
func TestRestoreKeepsModeAndOwner(t *testing.T) {
	const nobody = 65534
	type owner struct{ uid, gid int }
	for _, tc := range []struct {
		name  string
		mode  os.FileMode // the live file's, before the backup
		owner *owner      // chowned to before the backup; nil: left as made
		after func(t *testing.T, db string)
		want  os.FileMode
	}{
		{name: "0644", mode: 0o644, want: 0o644},
		{name: "0664", mode: 0o664, want: 0o664},
		{name: "0640 owned by nobody", mode: 0o640, owner: &owner{nobody, nobody}, want: 0o640},
		{name: "mode changed after the backup", mode: 0o644, after: func(t *testing.T, db string) {
			if err := os.Chmod(db, 0o660); err != nil {
				t.Fatal(err)
			}
		}, want: 0o660},
		{name: "removed by the migration", mode: 0o664, owner: &owner{nobody, nobody}, after: func(t *testing.T, db string) {
			for _, p := range []string{db, db + "-wal", db + "-shm"} {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
		}, want: 0o664},
	} {
		for _, withSQLite := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sqlite3=%v", tc.name, withSQLite), func(t *testing.T) {
				if _, err := exec.LookPath("sqlite3"); withSQLite && err != nil {
					if os.Getenv("CI") != "" {
						t.Fatal("sqlite3 CLI missing: apt-get install sqlite3")
					}
					t.Skip("install the sqlite3 CLI to test online backups")
				}
				if tc.owner != nil && os.Geteuid() != 0 {
					t.Skip("only root can give a file to another user")
				}
				l := newRoot(t)
				db := filepath.Join(l.Root, "shared/data/app.sqlite3")
				files := []string{"shared/data/app.sqlite3"}
				if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
					t.Fatal(err)
				}
				if withSQLite {
					if out, err := exec.Command("sqlite3", db, "CREATE TABLE t(v); INSERT INTO t VALUES('before');").CombinedOutput(); err != nil {
						t.Fatalf("%v %s", err, out)
					}
				} else {
					writeFile(t, db, "before")
					writeFile(t, db+"-wal", "wal before")
				}
				wantUID, wantGID := os.Geteuid(), os.Getegid()
				if tc.owner != nil {
					wantUID, wantGID = tc.owner.uid, tc.owner.gid
				}
				for _, p := range []string{db, db + "-wal"} {
					if _, err := os.Stat(p); os.IsNotExist(err) {
						continue
					}
					if err := os.Chown(p, wantUID, wantGID); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(p, tc.mode); err != nil {
						t.Fatal(err)
					}
				}
				cmd, err := BackupFiles(l, id2, files)
				if !withSQLite {
					cmd = withPath(cmd, pathWithout(t, "sqlite3"))
				}
				mustRun(t, cmd, err)
				if withSQLite {
					if out, err := exec.Command("sqlite3", db, "UPDATE t SET v='after';").CombinedOutput(); err != nil {
						t.Fatalf("%v %s", err, out)
					}
				} else {
					writeFile(t, db, "after")
				}
				if tc.after != nil {
					tc.after(t, db)
				}

				mustRun(t, mustCmd(RestoreFiles(l, id2, files)), nil)
				if withSQLite {
					out, err := exec.Command("sqlite3", db, "SELECT v FROM t;").CombinedOutput()
					if err != nil || strings.TrimSpace(string(out)) != "before" {
						t.Errorf("restored db says %q %v", out, err)
					}
				} else if b, _ := os.ReadFile(db); string(b) != "before" {
					t.Errorf("restored db = %q", b)
				}
				for _, p := range []string{db, db + "-wal"} {
					fi, err := os.Stat(p)
					if p != db && os.IsNotExist(err) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					st := fi.Sys().(*syscall.Stat_t)
					if fi.Mode().Perm() != tc.want || int(st.Uid) != wantUID || int(st.Gid) != wantGID {
						t.Errorf("%s restored with mode %v owner %d:%d, want %v %d:%d",
							filepath.Base(p), fi.Mode().Perm(), st.Uid, st.Gid, tc.want, wantUID, wantGID)
					}
				}
			})
		}
	}
}
