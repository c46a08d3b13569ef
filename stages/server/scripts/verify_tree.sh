# shellcheck shell=sh
# verify_tree.sh DIR SUMS LINKS TMP SKIP EXTRA_OK JOBS FILTER_AWK [TRUSTED]
#
# Compares the release tree DIR with its manifest lists, SUMS (a sha256sum
# list) and LINKS ("path -> target" lines), and prints one line per
# difference: "modified P", "missing P", "extra P" or "badlink P". Paths in
# SKIP (newline-separated: the shared links) and below them are left out;
# extra regular files are allowed below EXTRA_OK (carried assets) unless it
# is empty. TMP is a scratch directory. JOBS processes hash the files; empty
# means one per CPU. FILTER_AWK is the program of filter.awk.
# TRUSTED, when given, is a file of paths (one a line) whose content is
# known to match already: they must exist like every other, but are not
# hashed again.
# Exits 0 when the tree matches, 1 when it differs, 2 when it could not check.
set -u
dir=$1 sums=$2 links=$3 tmp=$4 extra_ok=$6 jobs=$7 filter_awk=$8 trusted=${9:-}
SC_SKIP=$5
export SC_SKIP

# fast_pass drops from $tmp/hash the lines openssl confirms, when the
# server has openssl: it uses the CPU's SHA extensions and hashed 42 MB in
# 30 ms of CPU where coreutils' sha256sum took 235 ms. It only ever
# confirms a match: whatever it did not confirm (a changed or missing file,
# an escaped name, openssl failing or absent) stays in $tmp/hash for
# sha256sum -c, which reports it. Its start costs about 10 ms, so short
# lists go to sha256sum directly. The names are dealt round-robin into $n
# lists, one openssl each, started by this shell: each process more costs
# a host a millisecond or two.
fast_pass() {
  command -v openssl >/dev/null 2>&1 || return 0
  # "./" keeps a name that starts with "-" from being read as an option;
  # escaped lines hold a backslash or newline and are left to sha256sum.
  awk -v n="$n" -v out="$tmp/fast." '
    substr($0, 1, 1) != "\\" { names[c++] = "./" substr($0, 67) }
    END { if (NR < 64) exit; for (i = 0; i < c; i++) print names[i] > (out (i % n)) }' "$tmp/hash"
  for p in "$tmp"/fast.*; do
    [ -e "$p" ] || return 0
    xargs -r -d '\n' openssl dgst -sha256 -r < "$p" > "$p.out" 2>/dev/null &
  done
  wait
  # openssl -r prints "<sha256> *./<name>"; a sums line is "<sha256>  <name>".
  # Should awk fail, nothing is confirmed.
  if awk -v hash="$tmp/hash" '
    FILENAME != hash { if (substr($0, 65, 4) == " *./") ok[substr($0, 1, 64) "  " substr($0, 69)] = 1; next }
    !($0 in ok)' "$tmp"/fast.*.out "$tmp/hash" > "$tmp/rest"; then
    mv -f "$tmp/rest" "$tmp/hash"
  fi
  rm -f "$tmp"/fast.*
}

# hash_check runs `sha256sum -c` of $tmp/hash into $tmp/check (failures
# only), in $n processes. The list is dealt round-robin into four parts
# per process so that a few large files do not leave one process hashing
# alone. Returns non-zero when any file failed or could not be read.
hash_check() {
  [ "$(wc -l < "$tmp/hash")" -ge 64 ] || n=1
  if [ "$n" -le 1 ]; then
    sha256sum -c --quiet --strict "$tmp/hash" > "$tmp/check" 2>/dev/null
    return
  fi
  split -n "r/$((n * 4))" "$tmp/hash" "$tmp/part."
  hrc=0
  # Each part gets its own output file: parallel writers to one pipe could
  # interleave their lines.
  # shellcheck disable=SC2016 # "$1" is the inner sh's, not to expand here
  for p in "$tmp"/part.*; do
    if [ -s "$p" ]; then printf '%s\n' "$p"; fi
  done | xargs -r -d '\n' -P "$n" -n 1 sh -c 'sha256sum -c --quiet --strict "$1" > "$1.out" 2>/dev/null' sh || hrc=$?
  cat "$tmp"/part.*.out 2>/dev/null | LC_ALL=C sort > "$tmp/check"
  rm -f "$tmp"/part.*
  return "$hrc"
}

cd "$dir" || exit 2
[ -f "$sums" ] || { echo "manifest list $sums is missing" >&2; exit 2; }
awk -v kind=sums "$filter_awk" "$sums" > "$tmp/sums"
if [ -n "$trusted" ] && [ -s "$trusted" ]; then
  # An escaped sums line (a name sha256sum had to escape) is always hashed.
  awk 'FNR == NR { t[$0] = 1; next } substr($0, 1, 1) == "\\" || !(substr($0, 67) in t)' "$trusted" "$tmp/sums" > "$tmp/hash"
else
  cp "$tmp/sums" "$tmp/hash"
fi
# The lists are joined in awk, so they need no sorting; only the few
# differences found are sorted, for a stable report.
: > "$tmp/links"
if [ -f "$links" ]; then awk -v kind=links "$filter_awk" "$links" > "$tmp/links"; fi
rc=0
: > "$tmp/check"
if [ -s "$tmp/hash" ]; then
  n=$jobs
  [ -n "$n" ] || n=$(nproc 2>/dev/null || echo 1)
  fast_pass
fi
if [ -s "$tmp/hash" ]; then hash_check || rc=$?; fi
awk '/: FAILED open or read$/ { sub(/: FAILED open or read$/, ""); print "missing " $0; next }
     /: FAILED$/ { sub(/: FAILED$/, ""); print "modified " $0 }' "$tmp/check" > "$tmp/report"
if [ "$rc" -ne 0 ] && [ ! -s "$tmp/report" ]; then
  echo "sha256sum could not check the list $sums" >&2
  exit 2
fi
# One walk of the tree: every file and symlink there must be listed (in
# the sums, or before " -> " in the links), extra regular files below
# EXTRA_OK aside; nothing else but directories may be there; and every
# listed symlink must be there, pointing where the list says. Symlinks
# list as "l PATH -> TARGET", anything else as its type letter and path.
find . -mindepth 1 ! -type d \( -type l -printf 'l %P -> %l\n' -o -printf '%y %P\n' \) |
  awk -v kind=typed "$filter_awk" > "$tmp/have"
LC_ALL=C awk -v ok="$extra_ok" '
  FILENAME == ARGV[1] { want[substr($0, 67)] = 1; next }
  FILENAME == ARGV[2] { links[$0] = 1; i = index($0, " -> "); want[i ? substr($0, 1, i - 1) : $0] = 1; next }
  {
    t = substr($0, 1, 1); p = substr($0, 3)
    if (t == "l") { have[p] = 1; p = substr(p, 1, index(p, " -> ") - 1) }
    if (t != "f" && t != "l") print "extra " p
    else if (!(p in want) && (ok == "" || index(p, ok "/") != 1)) print "extra " p
  }
  END {
    for (l in links) if (!(l in have)) { i = index(l, " -> "); print "badlink " (i ? substr(l, 1, i - 1) : l) }
  }' "$tmp/sums" "$tmp/links" "$tmp/have" | LC_ALL=C sort -k1,1r -k2 >> "$tmp/report"
cat "$tmp/report"
[ ! -s "$tmp/report" ]
