#!/bin/sh
# Print the variable named $1 (or "unset").
eval "v=\${$1-unset}"
printf '%s' "$v"
