# shellcheck shell=sh
# verify_archive.sh ARCHIVE SHA256 EXIT_MISMATCH
#
# Exits EXIT_MISMATCH, printing "expected <sha>" and "actual <sha>", when
# ARCHIVE's SHA-256 is not SHA256 (lowercase hex).
set -e
sum=$(sha256sum < "$1")
sum=${sum%% *}
if [ "$sum" != "$2" ]; then
  echo "expected $2"
  echo "actual $sum"
  exit "$3"
fi
