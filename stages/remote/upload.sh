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
# catches a file tee could not write whole.
#
# Where the host has openssl, the data is hashed as it arrives too, by a
# process of its own reading a fifo tee writes to, and TMP.sum gets its
# SHA-256 and what tells this very file (inode, size and mtime), for the
# move into place to keep beside the upload (see SumSuffix). Should the
# hashing fail, there is no TMP.sum and the upload is as without.
dir=$1 tmp=$2 through=$3
[ -d "$dir" ] || { echo "directory $dir does not exist on the server (create it before uploading)" >&2; exit 3; }
keep=
hashing=
trap 'rm -f -- "$tmp.fifo"; [ -n "$keep" ] || rm -f -- "$tmp" "$tmp.sum"' EXIT
trap 'exit 1' HUP INT TERM PIPE
if command -v openssl >/dev/null 2>&1 && mkfifo -- "$tmp.fifo" 2>/dev/null; then
  openssl dgst -sha256 -r < "$tmp.fifo" > "$tmp.sum" 2>/dev/null &
  hashing=$!
fi
# tee -p ignores a pipe, the fifo included, that stops reading.
if [ -n "$through" ] && [ -n "$hashing" ]; then
  tee -p -- "$tmp" "$tmp.fifo" | sh -c "$through" >/dev/null 2>&1
elif [ -n "$through" ]; then
  tee -p -- "$tmp" | sh -c "$through" >/dev/null 2>&1
elif [ -n "$hashing" ]; then
  tee -p -- "$tmp" > "$tmp.fifo" || exit 1
else
  cat > "$tmp" || exit 1
fi
n=$(wc -c < "$tmp") || exit 1
if [ -n "$hashing" ]; then
  sum=
  if wait "$hashing"; then read -r sum _ < "$tmp.sum" || sum=; fi
  case $sum in *[!0-9a-f]*) sum= ;; esac
  if [ ${#sum} -eq 64 ]; then
    echo "$sum $(stat -c '%i %s %y' -- "$tmp")" > "$tmp.sum" || rm -f -- "$tmp.sum"
  else
    rm -f -- "$tmp.sum"
  fi
fi
echo "$n" || exit 1
keep=1
