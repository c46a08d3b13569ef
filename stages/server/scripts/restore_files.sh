# shellcheck shell=sh
# restore_files.sh ROOT BACKUP_DIR ID FILE...
#
# Puts back what backup_files.sh saved in BACKUP_DIR before release ID:
# each FILE replaced by rename and its stale -wal/-shm siblings removed
# (they would corrupt the restored database); a FILE recorded as absent is
# moved aside to FILE.before-rollback.
set -e
root=$1 backup=$2 id=$3
shift 3
for f do
  src=$root/$f dst=$backup/$f
  if [ -e "$dst" ]; then
    mkdir -p "${src%/*}"
    cp -p "$dst" "$src.stagecoach-restore"
    for x in -wal -shm; do
      rm -f "$src$x"
      if [ -e "$dst$x" ]; then cp -p "$dst$x" "$src$x"; fi
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
