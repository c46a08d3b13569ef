# shellcheck shell=sh
# with_host.sh HOST COMMAND
#
# Runs the shell command COMMAND with STAGECOACH_HOST set to HOST: run by
# run_in.sh, so it runs in the release directory with shared/.env loaded.
STAGECOACH_HOST=$1
export STAGECOACH_HOST
exec /bin/sh -c "$2" "health check"
