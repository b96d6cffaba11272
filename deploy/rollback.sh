#!/bin/sh
# Example rollback for rollbackd's exec actions: undo the last rollout of a
# Kubernetes deployment named after the alert's `service` label.
#
#   deploy/rollback.sh SERVICE
#
# rollbackd passes SERVICE as exactly one argument (no shell ever expands
# it), the incident as JSON on stdin, and ROLLBACKD_* variables in the
# environment. When ROLLBACKD_DRY_RUN=1, or kubectl is not installed, it says
# what it would do and exits non-zero, so a missing tool never looks like a
# successful rollback.
set -eu

service=${1:-}
case "$service" in
	"" | -* | *[!A-Za-z0-9._-]*)
		echo "rollback.sh: refusing service name '$service' (expected [A-Za-z0-9._-]+)" >&2
		exit 2 ;;
esac
namespace=${ROLLBACKD_NAMESPACE:-${ROLLBACKD_LABEL_NAMESPACE:-default}}

if [ "${ROLLBACKD_DRY_RUN:-0}" = "1" ]; then
	echo "rollback.sh: dry-run: would run: kubectl -n $namespace rollout undo deployment/$service"
	exit 0
fi
if ! command -v kubectl >/dev/null 2>&1; then
	echo "rollback.sh: kubectl not found; would run: kubectl -n $namespace rollout undo deployment/$service" >&2
	exit 3
fi
echo "rollback.sh: incident ${ROLLBACKD_INCIDENT:-?}: undoing deployment/$service in $namespace"
kubectl -n "$namespace" rollout undo "deployment/$service"
kubectl -n "$namespace" rollout status "deployment/$service" --timeout=120s
