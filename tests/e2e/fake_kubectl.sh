#!/bin/sh
# A stand-in for kubectl, for the e2e test and the docker/compose.yml demo
# stack: deploy/rollback.sh runs unmodified and calls this instead of a real
# cluster. It succeeds, prints what it was asked to do (rollbackd keeps an
# action's output in the incident and the journal), and appends one line
#     <unix time>\t<ROLLBACKD_INCIDENT>\t<arguments>
# to kubectl.log next to itself when that directory is writable (the test
# counts those lines).
log="$(dirname "$0")/kubectl.log"
now=$(date +%s.%N)
printf '%s\t%s\t%s\n' "$now" "${ROLLBACKD_INCIDENT:-}" "$*" >>"$log" 2>/dev/null || true
echo "fake kubectl: $*"
exit 0
