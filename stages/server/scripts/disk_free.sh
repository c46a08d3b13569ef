# shellcheck shell=sh
# disk_free.sh DIR: `df -Pk` of the filesystem holding DIR or, before the
# first deploy, its nearest existing parent.
d=$1
while [ ! -e "$d" ]; do d=$(dirname "$d"); done
df -Pk "$d"
