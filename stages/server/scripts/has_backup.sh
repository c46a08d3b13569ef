# shellcheck shell=sh
# has_backup.sh BACKUP_DIR FILE...
#
# Changes nothing. Exits 0 when backup_files.sh saved every FILE in
# BACKUP_DIR (its copy, or its record that the file was absent), else 1,
# naming on stdout the first FILE without one.
backup=$1
shift
for f do
  if [ ! -e "$backup/$f" ] && [ ! -e "$backup/$f.absent" ]; then
    printf '%s\n' "$f"
    exit 1
  fi
done
