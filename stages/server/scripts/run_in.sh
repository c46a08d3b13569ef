# shellcheck shell=sh
# run_in.sh DIR ENV_FILE ID ROOT COMMAND [ARG...]
#
# Runs COMMAND in release directory DIR with ENV_FILE's variables exported
# (when it exists) and STAGECOACH_RELEASE and STAGECOACH_ROOT set.
cd "$1" || exit 1
if [ -f "$2" ]; then
  set -a
  # shellcheck source=/dev/null # shared/.env, written by write_env.sh
  . "$2"
  set +a
fi
STAGECOACH_RELEASE=$3 STAGECOACH_ROOT=$4
export STAGECOACH_RELEASE STAGECOACH_ROOT
shift 4
exec "$@"
