package server

import (
	"fmt"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

var (
	backupFilesScript  = load("backup_files.sh")
	restoreFilesScript = load("restore_files.sh")
	runInScript        = load("run_in.sh")
)

// BackupFiles copies files (root-relative, e.g. shared/data/app.sqlite3)
// into .stagecoach/backups/<id>/ before migrations. A SQLite database is
// copied with the sqlite3 CLI's online .backup when the server has it (a
// consistent copy even while the app writes); otherwise the file and its
// -wal and -shm siblings are copied. The copies are made owner-only (they
// hold the data); each file's mode and owner are recorded beside its copy. A
// file that does not exist is recorded as absent, so RestoreFiles can put
// that state back too.
func BackupFiles(l Layout, id string, files []string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	if err := validFiles(files); err != nil {
		return remote.Command{}, fmt.Errorf("back up files for %s: %w", id, err)
	}
	args := append([]string{l.Root, l.BackupDir(id)}, files...)
	return backupFilesScript.cmd("back up files before migrating "+id, args...), nil
}

// RestoreFiles puts back what BackupFiles saved for release id: each file
// replaced by rename, stale -wal/-shm siblings removed (they would corrupt
// the restored database). The restored file keeps the live file's mode and
// owner, or, when the live file is gone, gets those recorded at backup, so
// an app running as another user keeps its database; only root can give
// a file to another user, so a deploy user that is not root gets as close
// as chgrp allows and says so on stderr. A file recorded as absent is
// moved aside to <file>.before-rollback. Stop or restart the services
// using the files around it.
func RestoreFiles(l Layout, id string, files []string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	if err := validFiles(files); err != nil {
		return remote.Command{}, fmt.Errorf("restore files of %s: %w", id, err)
	}
	args := append([]string{l.Root, l.BackupDir(id), id}, files...)
	return restoreFilesScript.cmd("restore files backed up before "+id, args...), nil
}

var hasBackupScript = load("has_backup.sh")

// NoBackupError is a release left without the database backup a restore
// needs: its deploy migrated nothing, so it took none.
type NoBackupError struct {
	Release string
	File    string
}

func (e *NoBackupError) Error() string {
	return fmt.Sprintf("no database backup of %s was taken before release %s (its deploy ran no migration)", e.File, e.Release)
}

// HasBackup checks, changing nothing, that BackupFiles saved every one of
// files for release id; a file without a backup is a *NoBackupError.
func HasBackup(l Layout, id string, files []string) (Op[struct{}], error) {
	if err := ValidID(id); err != nil {
		return Op[struct{}]{}, err
	}
	if err := validFiles(files); err != nil {
		return Op[struct{}]{}, fmt.Errorf("look for the backup of %s: %w", id, err)
	}
	o := action(hasBackupScript.cmd("look for the database backup taken before "+id, append([]string{l.BackupDir(id)}, files...)...))
	o.failed = func(res remote.Result, code int, _ error) error {
		if code != 1 {
			return nil
		}
		return &NoBackupError{Release: id, File: strings.TrimSpace(string(res.Stdout))}
	}
	return o, nil
}

// BackupBeforeRollback saves files as they are, before a rollback from
// release leaving restores the backup taken before leaving: inside that
// backup's directory (so cleanup removes the two together), for
// RestoreBeforeRollback to put back should the rollback be undone.
func BackupBeforeRollback(l Layout, leaving string, files []string) (remote.Command, error) {
	if err := ValidID(leaving); err != nil {
		return remote.Command{}, err
	}
	if err := validFiles(files); err != nil {
		return remote.Command{}, fmt.Errorf("save files before rolling back from %s: %w", leaving, err)
	}
	args := append([]string{l.Root, beforeRollbackDir(l, leaving)}, files...)
	return backupFilesScript.cmd("save files before rolling back from "+leaving, args...), nil
}

// RestoreBeforeRollback puts back what BackupBeforeRollback saved, as
// RestoreFiles does.
func RestoreBeforeRollback(l Layout, leaving string, files []string) (remote.Command, error) {
	if err := ValidID(leaving); err != nil {
		return remote.Command{}, err
	}
	if err := validFiles(files); err != nil {
		return remote.Command{}, fmt.Errorf("put back files saved before rolling back from %s: %w", leaving, err)
	}
	args := append([]string{l.Root, beforeRollbackDir(l, leaving), leaving}, files...)
	return restoreFilesScript.cmd("put back files saved before rolling back from "+leaving, args...), nil
}

func beforeRollbackDir(l Layout, leaving string) string {
	return l.BackupDir(leaving) + "/.before-rollback"
}

func validFiles(files []string) error {
	for _, f := range files {
		if err := ValidRelPath(f); err != nil {
			return err
		}
	}
	return nil
}

// RunIn runs shellCmd in release id's directory with shared/.env exported
// (when present) and STAGECOACH_RELEASE and STAGECOACH_ROOT set: used for
// migrations and the "command" service manager.
func RunIn(l Layout, id, desc, shellCmd string) (remote.Command, error) {
	return runIn(l, id, desc, "/bin/sh", "-c", shellCmd)
}

// runIn is RunIn for a command given as argv.
func runIn(l Layout, id, desc string, argv ...string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	args := append([]string{l.ReleaseDir(id), l.EnvPath(), id, l.Root}, argv...)
	return runInScript.cmd(desc, args...), nil
}
