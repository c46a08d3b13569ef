# shellcheck shell=sh
# write_env.sh SHARED ENV_FILE < CONTENT
#
# Replaces ENV_FILE by stdin through a rename. umask 077: the secrets are
# never readable by others, not even for a moment.
set -e
umask 077
mkdir -p "$1"
tmp=$2.tmp.$$
cleanup() { rm -f "$tmp"; }
trap cleanup EXIT
cat > "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$2"
