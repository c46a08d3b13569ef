# shellcheck shell=sh
# unpack_stream.sh STAGING OUT COMPRESSION
#
# Fed the archive on stdin as it is sent (remote.Feed), of which it keeps
# no copy: unpacks it into STAGING as it arrives, with the listing
# stage_release.sh checks, so that staging finds the files in place.
# Staging is not live: nothing links to it or switches to it until
# stage_release.sh has checked the listing for unsafe entries and hashed
# every file. OUT receives the listing, the decompressor's and tar's
# messages ("errors") and, last, "rc", 0 when both succeeded; without rc 0
# stage_release.sh extracts the uploaded archive instead, or, when the
# archive was only fed to this script, fails for the client to upload it.
# It always reads its input to the end, so the feed goes on whatever tar
# did. COMPRESSION is the archive's, gzip or zstd.
umask 022
st=$1 out=$2 compression=$3
rm -rf -- "$st" "$out"
# The decompressor reads the stream itself: given -z or
# --use-compress-program, GNU tar would fork a process of its own to copy
# a piped archive into it, which costs a host a tenth of its CPU for the
# upload. A failing decompressor leaves a mark, since the pipeline's
# status is tar's.
decompress() {
  case $compression in
  gzip) gzip -dc ;;
  *) zstd -dc ;;
  esac || : > "$out/undecompressed"
}
rc=1
if mkdir -p -- "$out" "$st"; then
  rc=0
  # 64 KiB records, the most a pipe gives at a time, where tar's default
  # of 10 KiB takes six reads for as much.
  decompress 2>> "$out/errors" | tar -b 128 -xvv --numeric-owner --quoting-style=escape -f - -C "$st" \
    --no-same-owner --same-permissions --delay-directory-restore --touch > "$out/listing" 2>> "$out/errors" || rc=$?
  if [ -e "$out/undecompressed" ] && [ "$rc" -eq 0 ]; then rc=1; fi
fi
cat > /dev/null
echo "$rc" > "$out/rc.tmp" && mv -f -- "$out/rc.tmp" "$out/rc"
