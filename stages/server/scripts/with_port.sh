# shellcheck shell=sh
# with_port.sh PORT COMMAND
#
# Runs the shell command COMMAND with PORT exported: a slot's command, run
# by run_in.sh in the release directory with shared/.env loaded, so the
# slot's port wins over a PORT that shared/.env sets.
PORT=$1
export PORT
exec /bin/sh -c "$2" "slot on port $1"
