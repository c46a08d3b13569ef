# shellcheck shell=sh
# adopt.sh take ROOT ID EXIT_REFUSED NAPP [RELPATH LIVE]... [SHARED LIVE TARGET]...
# adopt.sh finish ROOT ID
#
# take, on a root no deploy has used (no .stagecoach/state.json, no
# current): copies each of the NAPP live app directories LIVE (relative to
# ROOT, or absolute) to releases/.staging-ID/RELPATH; then for each data
# path backs LIVE up to .stagecoach/backups/ID/SHARED (a SQLite database
# with the sqlite3 CLI's online .backup when there is one) and makes
# shared/SHARED a symlink to TARGET (which leads to LIVE), so that the
# running app and every release use the same files and nothing moves
# under the running app. A refusal says why on stderr and exits
# EXIT_REFUSED, having changed nothing. It prints the staged tree, three
# parts separated by NUL bytes: a sha256sum list of its regular files,
# "MODE SIZE PATH" lines of them, and "PATH -> TARGET" lines of its
# symlinks.
#
# finish renames releases/.staging-ID to releases/ID.
set -eu
action=$1 root=$2 id=$3
staging=releases/.staging-$id
cd "$root"
if [ "$action" = finish ]; then
  mv -T "$staging" "releases/$id"
  exit 0
fi
refused=$4 napp=$5
shift 5
refuse() {
  echo "$*" >&2
  exit "$refused"
}
if [ -e .stagecoach/state.json ] || [ -e current ] || [ -L current ]; then
  refuse "$root is deployed by stagecoach already (it has .stagecoach/state.json or current): there is nothing to adopt"
fi

# Check everything before changing anything.
i=0
for a do
  [ "$i" -lt $((napp * 2)) ] || break
  if [ $((i % 2)) -eq 1 ] && [ ! -d "$a" ]; then
    refuse "the live directory $a does not exist under $root (adopt.app)"
  fi
  i=$((i + 1))
done
j=0
for a do
  j=$((j + 1))
  [ "$j" -gt $((napp * 2)) ] || continue
  k=$(((j - napp * 2 - 1) % 3))
  case $k in
  0) s=shared/$a ;;
  1)
    live=$a
    if [ ! -e "$live" ]; then
      refuse "the live data $live does not exist under $root (adopt.data)"
    fi
    ;;
  2)
    if [ -L "$s" ] && [ "$(readlink "$s")" = "$a" ]; then
      : # linked by an adoption that stopped before its end
    elif [ -e "$s" ] || [ -L "$s" ]; then
      refuse "$root/$s exists already: move it aside, or leave $live out of adopt.data"
    fi
    ;;
  esac
done

rm -rf "$staging"
mkdir -p "$staging"
while [ "$napp" -gt 0 ]; do
  dst=$staging/$1
  mkdir -p "${dst%/*}"
  cp -a "$2" "$dst"
  shift 2
  napp=$((napp - 1))
done

umask 077
while [ $# -ge 3 ]; do
  s=shared/$1 live=$2 target=$3 b=.stagecoach/backups/$id/$1
  shift 3
  mkdir -p "${b%/*}"
  rm -rf "$b"
  cp -a "$live" "$b"
  # A database being written while cp reads it may be copied torn: take
  # SQLite files again with the online backup.
  if command -v sqlite3 >/dev/null 2>&1; then
    find "$live" -type f -exec sh -c '
      live=$1 b=$2
      shift 2
      for f do
        [ "$(head -c 15 "$f")" = "SQLite format 3" ] || continue
        case $f in /*) fa=$f ;; *) fa=$PWD/$f ;; esac
        dst=$b${f#"$live"}
        # .backup parses its argument itself: give it a plain name.
        (cd "${dst%/*}" && rm -f .stagecoach-adopt.tmp &&
          sqlite3 "$fa" ".backup .stagecoach-adopt.tmp" && mv -f .stagecoach-adopt.tmp "${dst##*/}")
      done' sh "$live" "$b" {} +
  fi
  mkdir -p "${s%/*}"
  if [ ! -L "$s" ]; then
    ln -s "$target" "$s.adopt-tmp"
    mv -T "$s.adopt-tmp" "$s"
  fi
done

cd "$staging"
find . -mindepth 1 -type f -printf '%P\0' | xargs -0 -r sha256sum --
printf '\0'
find . -mindepth 1 -type f -printf '%m %s %P\n'
printf '\0'
find . -mindepth 1 -type l -printf '%P -> %l\n'
