# shellcheck shell=sh
# verify_archive.sh ARCHIVE SHA256 EXIT_MISMATCH [FAST [MARK]]
#
# Exits EXIT_MISMATCH, printing "expected <sha>" and "actual <sha>", when
# ARCHIVE's SHA-256 is not SHA256 (lowercase hex). When it matches and MARK
# is given, writes into the file MARK (creating its directory) SHA256 and
# what tells this very file: its inode, size and mtime. Staging then knows
# that the files it extracts from ARCHIVE, unless ARCHIVE was written
# since, are the client's.
#
# With FAST set (a large archive), openssl hashes it where the server has it:
# it uses the CPU's SHA extensions, 8 times faster than coreutils'
# sha256sum, but takes about 10 ms to start. Should openssl fail,
# sha256sum hashes it.
set -e
# A mark left by an earlier check of this release's archive must not
# vouch for this one.
if [ -n "${5:-}" ] && [ -e "$5" ]; then rm -f -- "$5"; fi
sum=''
if [ -n "${4:-}" ] && command -v openssl >/dev/null 2>&1; then
  sum=$(openssl dgst -sha256 -r < "$1" 2>/dev/null) || sum=
  sum=${sum%% *}
  # Anything but 64 hex digits: openssl did not hash it.
  case $sum in *[!0-9a-f]*) sum= ;; esac
  [ ${#sum} -eq 64 ] || sum=
fi
if [ -z "$sum" ]; then
  sum=$(sha256sum < "$1")
  sum=${sum%% *}
fi
if [ "$sum" != "$2" ]; then
  echo "expected $2"
  echo "actual $sum"
  exit "$3"
fi
if [ -n "${5:-}" ]; then
  [ -d "${5%/*}" ] || mkdir -p -- "${5%/*}"
  echo "$sum $(stat -c '%i %s %y' -- "$1")" > "$5"
fi
