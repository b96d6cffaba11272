#!/bin/sh
# Leave a grandchild holding stdout open, and exit 0 at once.
sleep 30 &
echo "$!"
exit 0
