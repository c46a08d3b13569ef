# shellcheck shell=sh
# port_free.sh PORT EXIT_TAKEN
#
# Exits EXIT_TAKEN, naming the listener when ss can, when something listens
# on TCP port PORT (any address, IPv4 or IPv6); exits 0 when nothing does.
# Reads /proc/net/tcp and tcp6, which every Linux has: no tool is needed.
port=$1 exit_taken=$2
hex=$(printf '%04X' "$port")
for f in /proc/net/tcp /proc/net/tcp6; do
  [ -r "$f" ] || continue
  # Field 2 is local address:port in hex, field 4 the state; 0A is LISTEN.
  if awk -v p="$hex" 'NR > 1 { n = split($2, a, ":"); if (a[n] == p && $4 == "0A") found = 1 } END { exit !found }' "$f"; then
    echo "port $port is taken by a process this deploy did not start" >&2
    if command -v ss >/dev/null 2>&1; then
      ss -Hltnp "sport = :$port" >&2 || true
    fi
    exit "$exit_taken"
  fi
done
exit 0
