# shellcheck shell=sh
# upload.sh DIR TMP THROUGH
#
# Receives stdin into TMP, in the existing directory DIR, and prints its
# size. It does not rename: a dropped connection looks like end of input,
# so the client has the file moved into place only once it knows every
# byte arrived. The trap removes the partial file whenever the script does
# not finish.
#
# With THROUGH, the data also goes, as it arrives, to the standard input
# of the script THROUGH, run by sh with its output discarded: tee -p goes
# on writing the file should THROUGH stop reading, and the size check
# catches a file tee could not write whole. Where the host has openssl,
# tee feeds it a third copy on a pipe of its own (fd 3), and TMP.sum gets
# the SHA-256 of what arrived and what tells this very file (inode, size
# and mtime), for the move into place to keep beside the upload (see
# SumSuffix). Should the hashing fail, there is no TMP.sum.
dir=$1 tmp=$2 through=$3
[ -d "$dir" ] || { echo "directory $dir does not exist on the server (create it before uploading)" >&2; exit 3; }
keep=
trap '[ -n "$keep" ] || rm -f -- "$tmp" "$tmp.sum" "$tmp.unhashed"' EXIT
trap 'exit 1' HUP INT TERM PIPE
hashed=
if [ -z "$through" ]; then
  cat > "$tmp" || exit 1
elif command -v openssl >/dev/null 2>&1; then
  hashed=1
  # tee -p ignores a pipe that stops reading, openssl's included; a tee
  # that could not open or write every output (openssl would then have
  # hashed less than the file) leaves a mark, and the hash is not kept.
  # THROUGH does not get fd 3: a process it left behind would keep openssl
  # waiting.
  { { tee -p -- "$tmp" /dev/fd/3 || : > "$tmp.unhashed"; } | sh -c "$through" >/dev/null 2>&1 3>&-; } 3>&1 |
    openssl dgst -sha256 -r > "$tmp.sum" 2>/dev/null || hashed=
  if [ -e "$tmp.unhashed" ]; then
    rm -f -- "$tmp.unhashed"
    hashed=
  fi
else
  tee -p -- "$tmp" | sh -c "$through" >/dev/null 2>&1
fi
n=$(wc -c < "$tmp") || exit 1
if [ -z "$hashed" ]; then
  [ ! -e "$tmp.sum" ] || rm -f -- "$tmp.sum"
else
  sum=
  read -r sum _ < "$tmp.sum" || sum=
  case $sum in *[!0-9a-f]*) sum= ;; esac
  if [ ${#sum} -eq 64 ]; then
    echo "$sum $(stat -c '%i %s %y' -- "$tmp")" > "$tmp.sum" || rm -f -- "$tmp.sum"
  else
    rm -f -- "$tmp.sum"
  fi
fi
echo "$n" || exit 1
keep=1
