#!/bin/sh
# Blue/green through HAProxy's runtime API: send traffic back to the old
# colour by making it ready and putting the new colour in maintenance.
#
#   rules/examples/haproxy-switch.sh BACKEND OLD NEW [SOCKET]
#
# SOCKET is HAProxy's admin socket (`stats socket ... level admin`), default
# $HAPROXY_SOCKET or /run/haproxy/admin.sock. Both commands go in one
# connection ("set server B/OLD state ready; set server B/NEW state maint");
# HAProxy answers each with an empty line on success and a message
# otherwise, so any text in the answer is a failure. Running it twice is
# harmless: both states are absolute. Names are checked, never interpreted
# by a shell.
set -eu
backend=${1:-} old=${2:-} new=${3:-}
sock=${4:-${HAPROXY_SOCKET:-/run/haproxy/admin.sock}}
for n in "$backend" "$old" "$new"; do
	case "$n" in
		"" | -* | *[!A-Za-z0-9._-]*)
			echo "haproxy-switch.sh: refusing name '$n' (expected [A-Za-z0-9._-]+)" >&2
			exit 2 ;;
	esac
done
if [ "$old" = "$new" ]; then
	echo "haproxy-switch.sh: old and new colour are both '$old'" >&2
	exit 2
fi
if [ "${ROLLBACKD_DRY_RUN:-0}" = "1" ]; then
	echo "haproxy-switch.sh: dry-run: would send to $sock: set server $backend/$old state ready; set server $backend/$new state maint"
	exit 0
fi
command -v socat >/dev/null 2>&1 || { echo "haproxy-switch.sh: socat not found" >&2; exit 3; }
answer=$(printf 'set server %s/%s state ready; set server %s/%s state maint\n' \
	"$backend" "$old" "$backend" "$new" | socat -t 5 stdio "unix-connect:$sock")
refused=$(printf '%s\n' "$answer" | sed '/^[[:space:]]*$/d' | paste -sd ' ' -)
if [ -n "$refused" ]; then
	echo "haproxy-switch.sh: HAProxy refused: $refused" >&2
	exit 1
fi
echo "haproxy-switch.sh: $backend: traffic back to $old, $new in maintenance"
