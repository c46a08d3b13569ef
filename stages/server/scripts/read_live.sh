# shellcheck shell=sh
# read_live.sh ROOT
#
# Prints the state file, the target of current and that release's manifest,
# each possibly empty, separated by NUL bytes (which none of them contains).
cd "$1" 2>/dev/null || {
  printf '\0\0'
  exit 0
}
cat .stagecoach/state.json 2>/dev/null || true
printf '\0'
cur=$(readlink current 2>/dev/null || true)
printf '%s\0' "$cur"
case $cur in
releases/*) cat ".stagecoach/manifests/${cur#releases/}.json" 2>/dev/null || true ;;
esac
