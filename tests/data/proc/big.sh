#!/bin/sh
# Write 1 MiB of 'x' and exit 0: must not block on a full pipe.
head -c 1048576 /dev/zero | tr '\0' 'x'
exit 0
