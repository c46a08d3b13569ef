# shellcheck shell=sh
# systemd.sh UNIT...: restarts the units, directly as root, else through
# sudo -n, which fails instead of prompting for a password.
if [ "$(id -u)" -eq 0 ]; then
  exec systemctl restart -- "$@"
fi
exec sudo -n systemctl restart -- "$@"
