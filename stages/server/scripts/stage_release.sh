# shellcheck shell=sh
# stage_release.sh STAGING FINAL ARCHIVE SUMS LINKS META ID PREV EXIT_UNSAFE EXIT_MISMATCH VERIFY_TREE_SH FILTER_AWK CHECK_ARCHIVE_AWK REUSE_LINK_SH UNPACKED PREV_SUMS ARCHIVE_SHA256 COMPRESSION EXIT_NOT_UNPACKED
#
# Assembles release ID in STAGING: hard-links the files listed on stdin
# (NUL-separated, as reuse_link.sh takes them) from the previous release
# PREV unless PREV is empty, extracts ARCHIVE, checks its listing with
# CHECK_ARCHIVE_AWK (exit EXIT_UNSAFE) and the tree against SUMS and LINKS
# with VERIFY_TREE_SH (exit EXIT_MISMATCH, the differences on stdout), and
# only then renames STAGING to FINAL and removes ARCHIVE. META holds the
# scratch directory. Any failure removes STAGING and keeps ARCHIVE.
#
# When unpack_stream.sh unpacked the archive into STAGING while it was
# uploaded and left UNPACKED/rc saying tar succeeded, the archive is not
# extracted again: its listing is checked first, before anything is
# linked, then the previous release's files are linked in. Otherwise
# STAGING is removed and the archive extracted as above; when there is no
# ARCHIVE either (it was only fed to unpack_stream.sh), staging fails with
# EXIT_NOT_UNPACKED, the unpacking's messages on stderr, for the client to
# upload the archive.
#
# Once verified, the release's SUMS is touched: its mtime says when every
# file of the release last matched. A file hard-linked from PREV that is
# not newer than PREV_SUMS has not been written since PREV was verified,
# so it is checked for being there but not hashed again. So is a file extracted from ARCHIVE when verify_archive.sh found
# it has ARCHIVE_SHA256 and left UNPACKED/verified saying so, and ARCHIVE
# was not written since: the client packed each file only once it matched
# its manifest entry, so the archive's SHA-256 vouches for every file in
# it. Any other file is hashed. COMPRESSION is the archive's, gzip or zstd.
set -eu
umask 022
st=$1 final=$2 archive=$3 sums=$4 links=$5 meta=$6 id=$7 prev=$8
exit_unsafe=$9 exit_mismatch=${10}
verify_tree_sh=${11} filter_awk=${12} check_archive_awk=${13} reuse_link_sh=${14}
unpacked=${15} prev_sums=${16:-} archive_sha=${17:-} exit_not_unpacked=${19:-1}
case ${18:-gzip} in
gzip) z=-z ;;
*) z=--use-compress-program=zstd ;;
esac

if [ -e "$final" ]; then
  echo "release $id already exists on the server" >&2
  exit 1
fi
streamed=
if [ -d "$st" ] && [ "$(cat "$unpacked/rc" 2>/dev/null)" = 0 ] && [ -f "$unpacked/listing" ]; then
  streamed=1
else
  rm -rf "$st"
fi
mkdir -p "$meta"
tmp=$(mktemp -d "$meta/stage.XXXXXX")
cleanup() {
  rc=$?
  rm -rf "$tmp" "$unpacked"
  [ "$rc" -eq 0 ] || rm -rf "$st"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

link_previous() {
  if [ -n "$prev" ]; then
    (cd "$prev" && xargs -0 -r sh -c "$reuse_link_sh" reuse_link.sh "$st")
  fi
}
if [ -z "$streamed" ] && [ ! -f "$archive" ]; then
  echo "not unpacked whole as it arrived, nor uploaded as a file" >&2
  cat -- "$unpacked/errors" >&2 2>/dev/null || :
  exit "$exit_not_unpacked"
fi
if [ -n "$streamed" ]; then
  # Unpacked as it arrived: check what was extracted before
  # linking anything into it.
  awk "$check_archive_awk" "$unpacked/listing" >&2 || exit "$exit_unsafe"
  link_previous
else
  mkdir -p "$st"
  link_previous
fi
# One pass: -vv lists every entry as it is extracted, in the format of
# tar -tv, and the listing is checked before the tree is verified and
# renamed into place. GNU tar itself never writes through a symlink it has
# just extracted, so an escaping entry cannot reach outside the staging
# directory meanwhile. --touch: the archive's fixed mtimes would give a
# changed file of the same size the same ETag (nginx derives it from mtime
# and size) and a stale 304; hard-linked reused files keep their mtime, as
# their content is unchanged.
trc=0
if [ -z "$streamed" ]; then
  tar "$z" -xvv --numeric-owner --quoting-style=escape -f "$archive" -C "$st" \
    --no-same-owner --same-permissions --delay-directory-restore --touch > "$tmp/listing" || trc=$?
  awk "$check_archive_awk" "$tmp/listing" >&2 || exit "$exit_unsafe"
fi
if [ "$trc" -ne 0 ]; then
  # GNU tar skips a member with ".." in its name, says so on stderr and
  # exits 2 at the end, but leaves it out of the -vv listing. tar -t lists
  # every member as it is named: when that listing has an unsafe entry,
  # the archive is refused for it. Only a failed extraction pays for this
  # second pass, and it reads the listing, not tar's messages.
  if ! tar "$z" -tv --numeric-owner --quoting-style=escape -f "$archive" 2>/dev/null | awk "$check_archive_awk" >&2; then
    exit "$exit_unsafe"
  fi
  exit "$trc"
fi
: > "$tmp/trusted"
if [ -n "$prev" ] && [ -n "$prev_sums" ] && [ -f "$prev_sums" ]; then
  # A file with more than one link was linked here from PREV: tar gives
  # each file it extracts one link and the time of extraction, and the
  # listing refuses an archive's hard-link entries. Names with a newline
  # or a backslash would not list as one line each: such files are hashed.
  nl='
'
  (cd "$st" && find . -type f -links +1 ! -newer "$prev_sums" ! -path "*$nl*" ! -path '*\\*' -printf '%P\n') > "$tmp/trusted"
fi
mark=
if [ -n "$archive_sha" ] && [ -f "$unpacked/verified" ]; then read -r mark < "$unpacked/verified" || :; fi
if [ -n "$mark" ] && [ "$mark" = "$archive_sha $(stat -c '%i %s %y' -- "$archive" 2>/dev/null)" ]; then
  # Extracted by tar from the verified archive: one link. A hard link from
  # PREV has two or more.
  nl='
'
  (cd "$st" && find . -type f -links 1 ! -path "*$nl*" ! -path '*\\*' -printf '%P\n') >> "$tmp/trusted"
fi
vrc=0
/bin/sh -c "$verify_tree_sh" verify_tree.sh "$st" "$sums" "$links" "$tmp" "" "" "" "$filter_awk" "$tmp/trusted" || vrc=$?
if [ "$vrc" -eq 1 ]; then exit "$exit_mismatch"; elif [ "$vrc" -ne 0 ]; then exit 1; fi
mv -T "$st" "$final"
touch -- "$sums" || :
# Staging verified every file of the archive: it is of no more use.
rm -f -- "$archive" || :
