#!/bin/sh
# Fork a grandchild in our group, print its pid first, then wait on it.
sleep 30 &
echo "$!"
wait
