#!/bin/sh
# Print every argument followed by a NUL, so the test can compare bytes.
for a in "$@"; do
	printf '%s\0' "$a"
done
