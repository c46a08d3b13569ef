# shellcheck shell=sh
# restore_files.sh ROOT BACKUP_DIR ID FILE...
#
# Puts back what backup_files.sh saved in BACKUP_DIR before release ID:
# each FILE replaced by rename and its stale -wal/-shm siblings removed
# (they would corrupt the restored database); a FILE recorded as absent is
# moved aside to FILE.before-rollback. The restored file and siblings get
# the live file's mode and owner, or, when the live file is gone, those
# recorded in FILE.mode at backup: not the backup's own, owner-only ones,
# which would lock out an app running as another user.
set -e
root=$1 backup=$2 id=$3
shift 3

# attrs PATH MODE UID GID: gives PATH the mode and, as far as this user
# may (only root gives a file away), the owner. chown before chmod: chown
# clears the set-id bits.
attrs() {
  if ! chown "$3:$4" "$1" 2>/dev/null; then
    chgrp "$4" "$1" 2>/dev/null || :
    echo "restore: ${1%.stagecoach-restore} could not be given to $3:$4; it belongs to $(stat -c %u:%g -- "$1")" >&2
  fi
  chmod "$2" "$1"
}

for f do
  src=$root/$f dst=$backup/$f
  if [ -e "$dst" ]; then
    mkdir -p "${src%/*}"
    if [ -e "$src" ]; then
      own=$(stat -L -c '%a %u %g' -- "$src")
    elif [ -f "$dst.mode" ]; then
      own=$(cat "$dst.mode")
    else
      own='' # a backup from before modes were recorded: the backup's own
    fi
    mode='' uid='' gid=''
    read -r mode uid gid <<EOF || :
$own
EOF
    cp -p "$dst" "$src.stagecoach-restore"
    if [ -n "$mode" ]; then attrs "$src.stagecoach-restore" "$mode" "$uid" "$gid"; fi
    for x in -wal -shm; do
      rm -f "$src$x"
      if [ -e "$dst$x" ]; then
        cp -p "$dst$x" "$src$x"
        if [ -n "$mode" ]; then attrs "$src$x" "$mode" "$uid" "$gid"; fi
      fi
    done
    mv -f "$src.stagecoach-restore" "$src"
  elif [ -e "$dst.absent" ]; then
    for x in "" -wal -shm; do
      if [ -e "$src$x" ]; then mv -f "$src$x" "$src$x.before-rollback"; fi
    done
  else
    echo "no backup of $f for release $id" >&2
    exit 1
  fi
done
