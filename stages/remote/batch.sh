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
# Every process costs a fork (a millisecond or more on a busy host, and a
# fleet's hosts may share one): the loop starts one per script, a wc
# only when a script printed something, a head only per stream to send.
i=0 failed=
for script do
	i=$((i + 1))
	len=${lengths%% *} lengths=${lengths#* }
	in=/dev/null
	if [ "$len" != - ]; then
		in=$dir/in$i
		dd bs=65536 count="$len" iflag=count_bytes,fullblock of="$in" 2>/dev/null || exit 125
	fi
	if [ -n "$failed" ]; then
		printf 'stagecoach-batch %s skipped 0 0\n' "$i"
		continue
	fi
	# Files of each script's own: a process a script left behind may
	# still be writing to its files.
	out=$dir/out$i err=$dir/err$i
	/bin/sh -c "$script" <"$in" >"$out" 2>"$err"
	code=$?
	[ "$code" = 0 ] || failed=1
	# Measured once, then sent exactly that much.
	olen=0 elen=0
	if [ -s "$out" ] || [ -s "$err" ]; then
		{ read -r olen _ && read -r elen _; } <<EOF
$(wc -c "$out" "$err")
EOF
	fi
	printf 'stagecoach-batch %s %s %s %s\n' "$i" "$code" "$olen" "$elen"
	[ "$olen" = 0 ] || head -c "$olen" "$out"
	[ "$elen" = 0 ] || head -c "$elen" "$err"
done
