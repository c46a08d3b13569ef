# shellcheck shell=sh
# verify_archive.sh ARCHIVE SHA256 EXIT_MISMATCH [FAST]
#
# Exits EXIT_MISMATCH, printing "expected <sha>" and "actual <sha>", when
# ARCHIVE's SHA-256 is not SHA256 (lowercase hex). With FAST set (a large
# archive), openssl hashes it where the server has it: it uses the CPU's
# SHA extensions, 8 times faster than coreutils' sha256sum, but takes
# about 10 ms to start. Should openssl fail, sha256sum hashes it.
set -e
sum=
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
