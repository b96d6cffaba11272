#!/bin/sh
# Leave a grandchild in its own session (out of reach of the group kill),
# not holding stdout, and exit 0 once it runs sleep.
setsid sleep 30 >/dev/null 2>&1 &
pid=$!
while [ "$(cat /proc/$pid/comm 2>/dev/null)" != sleep ]; do :; done
echo "$pid"
exit 0
