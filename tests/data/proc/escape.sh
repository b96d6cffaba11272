#!/bin/sh
# A grandchild in its own session (out of reach of the group kill) keeps
# stdout open; print its pid first and exit 0.
setsid sleep 30 &
echo "$!"
exit 0
