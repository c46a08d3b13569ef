# shellcheck shell=sh
# carry_assets.sh RELEASE DIR CARRY_SH [PREV_RELEASE PREV_SUMS]...
#
# Hard-links into RELEASE, with CARRY_SH, the files below DIR that each
# earlier release lists in its sha256sum list PREV_SUMS: only its own files,
# so carried files do not pile up from release to release.
set -e
new=$1 dir=$2 carry_sh=$3
shift 3
while [ $# -ge 2 ]; do
  prev=$1 sums=$2
  shift 2
  if [ -d "$prev" ] && [ -f "$sums" ]; then
    cd "$prev"
    awk -v d="$dir" 'index(substr($0, 67), d "/") == 1 { print substr($0, 67) }' "$sums" |
      xargs -r -d '\n' sh -c "$carry_sh" carry.sh "$new"
  fi
done
