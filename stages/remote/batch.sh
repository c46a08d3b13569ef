# shellcheck shell=sh
# batch.sh STDIN_INDEX SCRIPT...
#
# Runs each SCRIPT with /bin/sh in order, in one round trip, stopping at the
# first that fails. The script numbered STDIN_INDEX (from 1; 0 for none)
# reads this program's stdin, the others /dev/null. For each script it
# prints a header "stagecoach-batch I CODE OLEN ELEN", then exactly OLEN
# bytes of its stdout and ELEN of its stderr; a script that did not run
# because one before it failed has CODE "skipped" and no output.
set -u
stdin_index=$1
shift
dir=$(mktemp -d) || exit 125
trap 'rm -rf "$dir"' EXIT
i=0 failed=
for script do
	i=$((i + 1))
	if [ -n "$failed" ]; then
		printf 'stagecoach-batch %s skipped 0 0\n' "$i"
		continue
	fi
	if [ "$i" = "$stdin_index" ]; then
		/bin/sh -c "$script" >"$dir/out" 2>"$dir/err"
	else
		/bin/sh -c "$script" <"/dev/null" >"$dir/out" 2>"$dir/err"
	fi
	code=$?
	[ "$code" = 0 ] || failed=1
	# Measured once, then sent exactly that much: a process the script left
	# behind may still be writing to the files.
	olen=$(wc -c <"$dir/out") elen=$(wc -c <"$dir/err")
	printf 'stagecoach-batch %s %s %s %s\n' "$i" "$code" "$olen" "$elen"
	head -c "$olen" "$dir/out"
	head -c "$elen" "$dir/err"
	rm -f "$dir/out" "$dir/err"
done
