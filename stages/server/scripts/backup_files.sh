# shellcheck shell=sh
# backup_files.sh ROOT BACKUP_DIR FILE...
#
# Copies each FILE (ROOT-relative) to BACKUP_DIR/FILE: a SQLite database
# with the sqlite3 CLI's online .backup when there is one, else the file
# with its -wal and -shm siblings. The copies are made under umask 077, in
# owner-only directories (they hold the data); FILE.mode records the
# file's mode, uid and gid ("644 1000 1000"), which restore_files.sh gives
# it back when the live file is gone. A missing file is recorded as
# FILE.absent. BACKUP_DIR/.complete, written last, marks the backup whole.
set -e
umask 077
root=$1 backup=$2
shift 2
i=0
for f do
  src=$root/$f dst=$backup/$f
  dir=${dst%/*}
  # .backup parses its argument itself, so it gets a plain name in the
  # destination's directory rather than the path.
  tmp=.stagecoach-backup-$i.tmp
  i=$((i + 1))
  mkdir -p "$dir"
  rm -f "$backup/.complete" "$dst" "$dst.absent" "$dst.mode" "$dst-wal" "$dst-shm"
  if [ ! -e "$src" ]; then
    : > "$dst.absent"
    continue
  fi
  stat -L -c '%a %u %g' -- "$src" > "$dst.mode"
  if command -v sqlite3 >/dev/null 2>&1 && [ "$(head -c 15 "$src")" = "SQLite format 3" ]; then
    (cd "$dir" && rm -f "$tmp" && sqlite3 "$src" ".backup $tmp")
    mv -f "$dir/$tmp" "$dst"
  else
    # Through a temporary name: a copy cut short must not pass for a
    # backup that restore_files.sh would put back.
    for x in "" -wal -shm; do
      if [ -e "$src$x" ]; then
        cp -p "$src$x" "$dst$x.tmp"
        mv -f "$dst$x.tmp" "$dst$x"
      fi
    done
  fi
done
# Last: the backup is whole, so the migration after it may have run.
: > "$backup/.complete"
