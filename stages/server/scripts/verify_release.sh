# shellcheck shell=sh
# verify_release.sh DIR SUMS LINKS SKIP EXTRA_OK JOBS EXIT_MISMATCH VERIFY_TREE_SH FILTER_AWK [PATH TARGET]...
#
# Checks the live release DIR with VERIFY_TREE_SH (see there for SUMS to
# JOBS), and that each shared PATH in it is a symlink to TARGET. Prints the
# differences and exits EXIT_MISMATCH when there are any.
set -u
dir=$1 sums=$2 links=$3 skip=$4 extra_ok=$5 jobs=$6 exit_mismatch=$7
verify_tree_sh=$8 filter_awk=$9
shift 9
tmp=$(mktemp -d) || exit 1
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

: > "$tmp/shared"
while [ $# -ge 2 ]; do
  [ "$(readlink "$dir/$1")" = "$2" ] || echo "badlink $1" >> "$tmp/shared"
  shift 2
done
rc=0
/bin/sh -c "$verify_tree_sh" verify_tree.sh "$dir" "$sums" "$links" "$tmp" "$skip" "$extra_ok" "$jobs" "$filter_awk" || rc=$?
cat "$tmp/shared"
[ "$rc" -le 1 ] || exit "$rc"
if [ "$rc" -eq 1 ] || [ -s "$tmp/shared" ]; then exit "$exit_mismatch"; fi
