# shellcheck shell=sh
# batch.sh LENGTHS SCRIPT...
#
# Runs each SCRIPT with /bin/sh in order, in one round trip, stopping at the
# first that fails. LENGTHS has one word per script: "-" when it reads
# nothing, else how many bytes of this program's stdin are its own, the
# scripts' inputs following each other there. For each script it prints a
# header "stagecoach-batch I CODE OLEN ELEN", then exactly OLEN bytes of its
# stdout and ELEN of its stderr; a script that did not run because one
# before it failed has CODE "skipped" and no output. GNU dd reads an exact
# byte count from a pipe with iflag=count_bytes,fullblock, so each script
# gets its own input and no more.
set -u
lengths=$1
shift
dir=$(mktemp -d) || exit 125
trap 'rm -rf "$dir"' EXIT
i=0 failed=
for script do
	i=$((i + 1))
	# shellcheck disable=SC2086 # word splitting picks the i-th length
	len=$(set -- $lengths; shift $((i - 1)); echo "$1")
	in=/dev/null
	if [ "$len" != - ]; then
		in=$dir/in
		dd bs=65536 count="$len" iflag=count_bytes,fullblock of="$in" 2>/dev/null || exit 125
	fi
	if [ -n "$failed" ]; then
		printf 'stagecoach-batch %s skipped 0 0\n' "$i"
		continue
	fi
	/bin/sh -c "$script" <"$in" >"$dir/out" 2>"$dir/err"
	code=$?
	[ "$code" = 0 ] || failed=1
	# Measured once, then sent exactly that much: a process the script left
	# behind may still be writing to the files.
	olen=$(wc -c <"$dir/out") elen=$(wc -c <"$dir/err")
	printf 'stagecoach-batch %s %s %s %s\n' "$i" "$code" "$olen" "$elen"
	head -c "$olen" "$dir/out"
	head -c "$elen" "$dir/err"
	rm -f "$dir/out" "$dir/err" "$dir/in"
done
