# shellcheck shell=sh
# stagecoach's shell agent: one long-lived /bin/sh per SSH session that runs
# script after script, so a deploy pays for opening a channel and starting
# the account's login shell once per host instead of once per command.
#
# Started as: agent.sh GROUP [FIRST]. FIRST, when given, is the script of
# request 1, which runs as soon as the agent greeted, with no stdin, and
# is answered as any request: the command that starts the agent carries
# the first request, saving the round trip of sending it afterwards. As a
# process's arguments show to the server's other users, only scripts that
# hold nothing secret come that way (remote.Command's Public).
#
# Protocol on this shell's stdin and stdout; lengths are decimal byte counts.
#   greeting: "stagecoach-agent 2 ready GROUP DIR", GROUP being the
#             session's process group (the login shell's pid, this script's
#             first argument) and DIR the agent's private directory; or
#             "stagecoach-agent unsupported: REASON" and exit (the client
#             then opens a session per command)
#   request:  "run ID l N ILEN" then the script as N lines, each ending in a
#             newline, or "run ID b N ILEN" then N bytes of script whose last
#             is a sentinel "x" (command substitution would strip trailing
#             newlines); then ILEN bytes of stdin (-1: none), then "end ID"
#   reply:    "done ID CODE OLEN ELEN", then OLEN bytes of stdout and ELEN
#             of stderr; or "refuse ID REASON" (the script did not run) or
#             "fail ID REASON" (it ran), and exit: the agent cannot go on
#   handover: "hand ID l N -1" (or b), the script, "end ID": the agent
#             replies "hand ID" and execs the script in its place, which
#             gets the rest of the session: what follows on stdin, its
#             output and its exit status. A command streaming its input or
#             output thus costs no session or login shell of its own. It is
#             stopped by killing GROUP.
# To cancel request ID, another session creates DIR/rID.cancel, then reads
# the script's pid (also its process group) from DIR/rID.pid and kills it.
# The agent starts no script whose cancel file exists, and looks for it
# again once it wrote the pid file: one of the two sees the other.
#
# Lines are read with read, which reads a pipe a byte at a time, and blobs
# with dd counting bytes, which never reads past its count: the stream stays
# in step. A short script comes as lines, which costs no process. A request cut short by a lost connection never runs, as its
# end line never arrives. Scripts run in a child sh in a session of their
# own (so a cancel can kill the whole group), with stdin from their blob and
# output into files, so neither exit nor writes to fd 1 and 2 can touch the
# protocol. Processes are few (each costs a millisecond or more on a busy
# host): one for the script, and one to measure and one per stream to send
# output when there is any. Variables are prefixed _sc_ so as not to
# clobber the exported environment the scripts inherit.

_sc_nl='
'

_sc_unsupported() {
	printf 'stagecoach-agent unsupported: %s\n' "$1"
	exit 0
}

# _sc_end replies $1 (refuse or fail) to request $2 with reason $3 and ends
# the agent: the stream may no longer be in step.
_sc_end() {
	printf '%s %s %s\n' "$1" "$2" "$3"
	exit 1
}

# _sc_num tells whether $1 is a decimal number.
_sc_num() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
}

# _sc_send writes the first $1 bytes of file $2.
_sc_send() {
	[ "$1" = 0 ] || dd bs=65536 count="$1" iflag=count_bytes,fullblock if="$2" 2>/dev/null
}

command -v setsid >/dev/null 2>&1 || _sc_unsupported 'no setsid command'
command -v mktemp >/dev/null 2>&1 || _sc_unsupported 'no mktemp command'
# dd must stop at exactly the count even on a pipe: without count_bytes or
# fullblock, or reading ahead, the next dd or read would be out of step.
_sc_probe=$(printf 'abcdefgh' | {
	dd bs=65536 count=3 iflag=count_bytes,fullblock 2>/dev/null && echo
	cat
})
[ "$_sc_probe" = "abc${_sc_nl}defgh" ] || _sc_unsupported 'dd cannot read an exact byte count (GNU dd needed)'

_sc_group=${1-}
_sc_num "$_sc_group" || _sc_unsupported "no process group given (got '$_sc_group')"
_sc_dir=$(mktemp -d 2>/dev/null) || _sc_unsupported 'mktemp -d failed'
case $_sc_dir in
*"$_sc_nl"* | [!/]*) _sc_unsupported "unusable temporary directory $_sc_dir" ;;
esac
trap 'rm -rf "$_sc_dir"' EXIT
trap 'exit 1' HUP INT TERM PIPE

# _sc_run runs script $2 as request $1 with stdin from file $3 and replies.
_sc_run() {
	_sc_base=$_sc_dir/r$1
	if [ -e "$_sc_base.cancel" ]; then
		printf 'cancelled before it started\n' >"$_sc_base.err"
		: >"$_sc_base.out"
		_sc_code=130
	else
		# Started in the background of a shell without job control, the
		# child is no group leader, so setsid makes it one in place: $! is
		# the script's pid, session and process group.
		setsid /bin/sh -c "$2" <"$3" >"$_sc_base.out" 2>"$_sc_base.err" &
		_sc_pid=$!
		echo "$_sc_pid" >"$_sc_base.pid"
		if [ -e "$_sc_base.cancel" ]; then
			kill -TERM -"$_sc_pid" "$_sc_pid" 2>/dev/null
			(
				sleep 2
				kill -KILL -"$_sc_pid" "$_sc_pid"
			) >/dev/null 2>&1 </dev/null &
		fi
		wait "$_sc_pid"
		_sc_code=$?
	fi

	# Measure once, then send exactly that much: a process the script left
	# behind may still be writing to the files.
	_sc_olen=0 _sc_elen=0
	if [ -s "$_sc_base.out" ] || [ -s "$_sc_base.err" ]; then
		{ read -r _sc_olen _ && read -r _sc_elen _; } <<EOF
$(wc -c "$_sc_base.out" "$_sc_base.err" 2>/dev/null)
EOF
		{ _sc_num "$_sc_olen" && _sc_num "$_sc_elen"; } || _sc_end fail "$1" 'cannot measure the output'
	fi
	printf 'done %s %s %s %s\n' "$1" "$_sc_code" "$_sc_olen" "$_sc_elen"
	_sc_send "$_sc_olen" "$_sc_base.out" && _sc_send "$_sc_elen" "$_sc_base.err" || exit 1
	# Emptied at once, as output may be large; removed later.
	: >"$_sc_base.out"
	: >"$_sc_base.err"
	[ "$3" = /dev/null ] || : >"$3"
}

printf 'stagecoach-agent 2 ready %s %s\n' "$_sc_group" "$_sc_dir"
if [ $# -ge 2 ]; then
	_sc_run 1 "$2" /dev/null
fi
_sc_n=0
while IFS=' ' read -r _sc_verb _sc_id _sc_mode _sc_slen _sc_ilen _sc_rest; do
	{ { [ "$_sc_verb" = run ] || { [ "$_sc_verb" = hand ] && [ "$_sc_ilen" = -1 ]; }; } &&
		_sc_num "$_sc_id" && _sc_num "$_sc_slen" &&
		{ [ "$_sc_mode" = l ] || [ "$_sc_mode" = b ]; } &&
		{ [ "$_sc_ilen" = -1 ] || _sc_num "$_sc_ilen"; } && [ -z "$_sc_rest" ]; } ||
		_sc_end refuse 0 'malformed request header'
	# Finished requests leave their files (a cancel may still come for
	# them); remove them now and then, between requests.
	_sc_n=$((_sc_n + 1))
	if [ "$_sc_n" -ge 100 ]; then
		rm -f "$_sc_dir"/r*
		_sc_n=0
	fi
	_sc_base=$_sc_dir/r$_sc_id

	_sc_script=
	if [ "$_sc_mode" = l ]; then
		while [ "$_sc_slen" -gt 0 ] && IFS= read -r _sc_line; do
			_sc_script=$_sc_script$_sc_line$_sc_nl
			_sc_slen=$((_sc_slen - 1))
		done
		[ "$_sc_slen" = 0 ] || exit 1
	else
		_sc_script=$(dd bs=65536 count="$_sc_slen" iflag=count_bytes,fullblock 2>/dev/null) ||
			_sc_end refuse "$_sc_id" 'cannot read the script'
		_sc_script=${_sc_script%x}
	fi
	_sc_in=/dev/null
	if [ "$_sc_ilen" != -1 ] && [ "$_sc_ilen" != 0 ]; then
		_sc_in=$_sc_base.in
		if ! _sc_msg=$(dd bs=65536 count="$_sc_ilen" iflag=count_bytes,fullblock of="$_sc_in" 2>&1); then
			_sc_end refuse "$_sc_id" "cannot store stdin: ${_sc_msg%%"$_sc_nl"*}"
		fi
	fi
	IFS= read -r _sc_last || exit 1
	[ "$_sc_last" = "end $_sc_id" ] || _sc_end refuse "$_sc_id" 'request out of step'

	if [ "$_sc_verb" = hand ]; then
		rm -rf "$_sc_dir"
		trap - EXIT HUP INT TERM PIPE
		printf 'hand %s\n' "$_sc_id"
		exec /bin/sh -c "$_sc_script"
	fi

	_sc_run "$_sc_id" "$_sc_script" "$_sc_in"
done
