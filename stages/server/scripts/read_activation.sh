# shellcheck shell=sh
# read_activation.sh CURRENT BACKUP_DIR
#
# Says what an activation whose answer never came left: the target of
# CURRENT, then whether BACKUP_DIR holds a complete backup (backup_files.sh
# writes .complete last), the point after which its migration may have run.
echo "current $(readlink "$1" || true)"
if [ -e "$2/.complete" ]; then
  echo "backup complete"
fi
