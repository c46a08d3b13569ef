# shellcheck shell=sh
# read_router.sh STATE CURRENT [ROUTER_FILE]
#
# Prints the slots' state file (nothing when there is none), a line
# "--- current" and where the CURRENT symlink points (nothing when there
# is none), then a line "--- router" and ROUTER_FILE's content when it is
# given and exists.
set -e
if [ -f "$1" ]; then
  cat "$1"
fi
echo "--- current"
readlink "$2" || true
echo "--- router"
if [ -n "${3:-}" ] && [ -f "$3" ]; then
  cat "$3"
fi
