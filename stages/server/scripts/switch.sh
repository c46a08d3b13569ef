# shellcheck shell=sh
# switch.sh ROOT ID EXIT_SWITCH_FAILED
#
# Points ROOT/current at releases/ID with one rename(2): a temporary symlink
# beside current is moved over it (GNU mv -T), so current always resolves.
# Prints the new target; exits EXIT_SWITCH_FAILED when current does not read
# back as releases/ID.
set -e
root=$1 id=$2 exit_failed=$3
cd "$root"
if [ ! -d "releases/$id" ]; then
  echo "release $id does not exist on the server" >&2
  exit 1
fi
ln -sfn "releases/$id" ".current-$id.tmp"
mv -Tf ".current-$id.tmp" current
t=$(readlink current)
if [ "$t" != "releases/$id" ]; then
  echo "current points at $t after the switch, not releases/$id" >&2
  exit "$exit_failed"
fi
echo "$t"
