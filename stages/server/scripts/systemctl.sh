# shellcheck shell=sh
# systemctl.sh ACTION UNIT...: starts or stops the units (ACTION start or
# stop), directly as root, else through sudo -n, which fails instead of
# prompting for a password.
action=$1
shift
if [ "$(id -u)" -eq 0 ]; then
  exec systemctl "$action" -- "$@"
fi
exec sudo -n systemctl "$action" -- "$@"
