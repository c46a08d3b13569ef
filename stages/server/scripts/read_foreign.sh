# shellcheck shell=sh
# read_foreign.sh ROOT [DATABASE...]
#
# On a root no deploy has used yet (no .stagecoach/state.json, no current)
# prints, each ending in a NUL byte, "entry NAME" for every top-level entry
# Stagecoach does not create there and "database PATH" for every DATABASE
# (relative to ROOT) that exists. Prints nothing on a root a deploy or an
# adoption has used, or one that does not exist yet.
cd "$1" 2>/dev/null || exit 0
shift
if [ -e .stagecoach/state.json ] || [ -e current ] || [ -L current ]; then
  exit 0
fi
for e in * .[!.]* ..?*; do
  if [ ! -e "$e" ] && [ ! -L "$e" ]; then
    continue # a pattern that matched nothing
  fi
  case $e in
  releases | current | shared | .stagecoach | lost+found) ;;
  *) printf 'entry %s\0' "$e" ;;
  esac
done
for db in "$@"; do
  if [ -e "$db" ]; then
    printf 'database %s\0' "$db"
  fi
done
