# shellcheck shell=sh
# batch.sh LENGTHS SCRIPT...
#
# Runs each SCRIPT in order, in one round trip, stopping at the first that
# fails. LENGTHS has one word per script: "-" when it reads nothing, else
# how many bytes of this program's stdin are its own, the scripts' inputs
# following each other there. Once all ran, it prints for each a header
# "stagecoach-batch I CODE OLEN ELEN", then exactly OLEN bytes of its
# stdout and ELEN of its stderr; a script that did not run because one
# before it failed has CODE "skipped" and no output. GNU dd reads an exact
# byte count from a pipe with iflag=count_bytes,fullblock, so each script
# gets its own input and no more.
#
# Each script runs as /bin/sh -c would run it, in a subshell of this one
# (a fork, no exec) with no positional parameters and its options reset;
# this program's variables are prefixed _sb_ so as not to meet its own.
set -u
_sb_lengths=$1
shift
_sb_dir=$(mktemp -d) || exit 125
trap 'rm -rf "$_sb_dir"' EXIT
# Every process costs a fork (a millisecond or more on a busy host, and a
# fleet's hosts may share one): each script costs its subshell, and the
# batch one wc for all the outputs there are and a head per stream sent.
_sb_n=0 _sb_failed='' _sb_sizes=''
for _sb_script do
	_sb_n=$((_sb_n + 1))
	_sb_len=${_sb_lengths%% *} _sb_lengths=${_sb_lengths#* }
	_sb_in=/dev/null
	if [ "$_sb_len" != - ]; then
		_sb_in=$_sb_dir/in$_sb_n
		dd bs=65536 count="$_sb_len" iflag=count_bytes,fullblock of="$_sb_in" 2>/dev/null || exit 125
	fi
	if [ -n "$_sb_failed" ]; then
		eval "_sb_code$_sb_n=skipped"
		continue
	fi
	# Files of each script's own: a process a script left behind may
	# still be writing to its files.
	(
		set +eu --
		eval "$_sb_script"
	) <"$_sb_in" >"$_sb_dir/out$_sb_n" 2>"$_sb_dir/err$_sb_n"
	_sb_c=$?
	eval "_sb_code$_sb_n=$_sb_c"
	[ "$_sb_c" = 0 ] || _sb_failed=1
	for _sb_f in "$_sb_dir/out$_sb_n" "$_sb_dir/err$_sb_n"; do
		if [ -s "$_sb_f" ]; then _sb_sizes="$_sb_sizes $_sb_f"; fi
	done
done
# Measured once, then sent exactly that much. The directory's name holds
# no blank (mktemp's), so neither do the files'.
if [ -n "$_sb_sizes" ]; then
	# shellcheck disable=SC2086 # the list is split on purpose
	wc -c $_sb_sizes > "$_sb_dir/sizes" || exit 125
	while read -r _sb_size _sb_f; do
		case $_sb_f in
		"$_sb_dir"/out* | "$_sb_dir"/err*) eval "_sb_size_${_sb_f##*/}=$_sb_size" ;;
		esac
	done < "$_sb_dir/sizes"
fi
_sb_i=0
while [ "$_sb_i" -lt "$_sb_n" ]; do
	_sb_i=$((_sb_i + 1))
	eval "_sb_c=\$_sb_code$_sb_i"
	if [ "$_sb_c" = skipped ]; then
		printf 'stagecoach-batch %s skipped 0 0\n' "$_sb_i"
		continue
	fi
	_sb_olen=0 _sb_elen=0
	eval "_sb_olen=\${_sb_size_out$_sb_i:-0} _sb_elen=\${_sb_size_err$_sb_i:-0}"
	printf 'stagecoach-batch %s %s %s %s\n' "$_sb_i" "$_sb_c" "$_sb_olen" "$_sb_elen"
	[ "$_sb_olen" = 0 ] || head -c "$_sb_olen" "$_sb_dir/out$_sb_i"
	[ "$_sb_elen" = 0 ] || head -c "$_sb_elen" "$_sb_dir/err$_sb_i"
done
