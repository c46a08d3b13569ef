# shellcheck shell=sh
# drain.sh PORT TENTHS QUIET
#
# Waits until no established TCP connection has had local port PORT for
# QUIET tenths of a second in a row, or TENTHS tenths have passed, checking
# every tenth, and prints how it ended. The quiet spell covers a router
# that still hands a request or two to the old slot just after its switch
# (nginx's old workers take requests until the master has started the new
# ones). Reads /proc/net/tcp and tcp6; where they are missing it waits the
# whole time.
port=$1 tenths=$2 quiet=$3
hex=$(printf '%04X' "$port")
open_conns() {
  if [ ! -r /proc/net/tcp ]; then
    echo unknown
    return
  fi
  n=0
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    # Field 2 is local address:port in hex, field 4 the state; 01 is
    # ESTABLISHED.
    c=$(awk -v p="$hex" 'NR > 1 { k = split($2, a, ":"); if (a[k] == p && $4 == "01") c++ } END { print c + 0 }' "$f")
    n=$((n + c))
  done
  echo "$n"
}
i=0 still=0
while [ "$i" -lt "$tenths" ]; do
  if [ "$(open_conns)" = 0 ]; then
    still=$((still + 1))
    if [ "$still" -ge "$quiet" ]; then
      echo "port $port drained after $((i * 100)) ms"
      exit 0
    fi
  else
    still=0
  fi
  sleep 0.1
  i=$((i + 1))
done
echo "port $port: $(open_conns) connections still open after the drain of $((tenths * 100)) ms"
