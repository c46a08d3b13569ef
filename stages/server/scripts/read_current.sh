# shellcheck shell=sh
# read_current.sh CURRENT: prints the symlink's target, nothing when there
# is no current yet.
readlink "$1" || true
