package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
