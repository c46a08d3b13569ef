# shellcheck shell=sh
# upload.sh DIR TMP
#
# Receives stdin into TMP, in the existing directory DIR, and prints its
# size. It does not rename: a dropped connection looks like end of input,
# so the client has the file moved into place only once it knows every
# byte arrived. The trap removes the partial file whenever the script does
# not finish.
dir=$1 tmp=$2
[ -d "$dir" ] || { echo "directory $dir does not exist on the server (create it before uploading)" >&2; exit 3; }
keep=
trap '[ -n "$keep" ] || rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
cat > "$tmp" || exit 1
n=$(wc -c < "$tmp") || exit 1
echo "$n" || exit 1
keep=1
