# shellcheck shell=sh
# link_shared.sh RELEASE SHARED [PATH TARGET]...
#
# Replaces each PATH in RELEASE by a symlink to TARGET, which leads to
# SHARED/PATH. The first time a path is shared the release's content there
# moves into SHARED as the initial content (an empty directory when it has
# none); afterwards SHARED wins and the release's own content is removed.
set -e
rel=$1 shared=$2
shift 2
while [ $# -ge 2 ]; do
  r=$rel/$1 s=$shared/$1 target=$2
  shift 2
  if [ ! -e "$s" ] && [ ! -L "$s" ]; then
    mkdir -p "${s%/*}"
    if [ -e "$r" ] || [ -L "$r" ]; then mv -T "$r" "$s"; else mkdir -p "$s"; fi
  fi
  rm -rf "$r"
  mkdir -p "${r%/*}"
  ln -s "$target" "$r"
done
