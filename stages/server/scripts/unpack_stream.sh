# shellcheck shell=sh
# unpack_stream.sh STAGING OUT COMPRESSION
#
# Fed the archive on stdin while it is uploaded: unpacks it into STAGING
# as it arrives, with the listing stage_release.sh checks, so that staging
# finds the files in place instead of extracting them after the upload.
# Staging is not live: nothing links to it or switches to it until
# stage_release.sh has checked the listing for unsafe entries, the
# archive's SHA-256 and every file. OUT receives the listing and, last,
# "rc", tar's exit status; without rc 0 stage_release.sh extracts the
# archive anew. It always reads its input to the end, so the upload goes on
# whatever tar did. COMPRESSION is the archive's, gzip or zstd.
umask 022
st=$1 out=$2 compression=$3
rm -rf -- "$st" "$out"
rc=1
case $compression in
gzip) z=-z ;;
*) z=--use-compress-program=zstd ;;
esac
if mkdir -p -- "$out" "$st"; then
  rc=0
  tar "$z" -xvv --numeric-owner --quoting-style=escape -f - -C "$st" \
    --no-same-owner --same-permissions --delay-directory-restore --touch > "$out/listing" 2>/dev/null || rc=$?
fi
cat > /dev/null
echo "$rc" > "$out/rc.tmp" && mv -f -- "$out/rc.tmp" "$out/rc"
