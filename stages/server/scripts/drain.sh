# shellcheck shell=sh
# drain.sh PORT TENTHS
#
# Waits until no established TCP connection has local port PORT, or TENTHS
# tenths of a second have passed, checking every tenth. Prints how it
# ended. Reads /proc/net/tcp and tcp6; where they are missing it waits the
# whole time.
port=$1 tenths=$2
hex=$(printf '%04X' "$port")
open_conns() {
  n=0
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    # State 01 is ESTABLISHED.
    c=$(awk -v p="$hex" 'NR > 1 { k = split($2, a, ":"); if (a[k] == p && $4 == "01") c++ } END { print c + 0 }' "$f")
    n=$((n + c))
  done
  if [ ! -r /proc/net/tcp ]; then
    n=unknown
  fi
  echo "$n"
}
i=0
while [ "$i" -lt "$tenths" ]; do
  n=$(open_conns)
  if [ "$n" = 0 ]; then
    echo "port $port drained after $((i * 100)) ms"
    exit 0
  fi
  sleep 0.1
  i=$((i + 1))
done
echo "port $port: $(open_conns) connections still open after the drain of $((tenths * 100)) ms"
