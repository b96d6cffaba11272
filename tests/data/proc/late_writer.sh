#!/bin/sh
# Exit 0 at once; a grandchild writes one more line 300 ms later, then ends.
(sleep 0.3; echo late) &
echo early
exit 0
