#!/bin/sh
# Leave a grandchild in our group running (not holding stdout) and exit 0.
sleep 30 >/dev/null 2>&1 &
echo "$!"
exit 0
