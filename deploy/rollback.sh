#!/bin/sh
# Example rollback for rollbackd's exec actions: roll a Kubernetes deployment
# named after the alert's `service` label back to a known revision.
#
#   deploy/rollback.sh SERVICE [REVISION]
#
# REVISION (or, when absent, $ROLLBACKD_CHANGE_PREVIOUS_REVISION, which
# rollbackd sets only when a change with a previous_revision was recorded for
# the target, SPEC §11) is the deployment revision to go back to:
#     kubectl rollout undo deployment/SERVICE --to-revision=REVISION
# Without one, the revision is pinned first: the one before the current one
# in `kubectl rollout history`. Never a blind `undo`: after a rollback the
# script annotates the deployment with the revision it produced
# (rollbackd.io/rolled-back-revision), and a second run that finds the
# deployment still at that revision does nothing, so running it twice never
# puts the bad version back.
#
# rollbackd passes SERVICE as exactly one argument (no shell ever expands
# it), the incident as JSON on stdin, and ROLLBACKD_* variables in the
# environment. The namespace is $ROLLBACKD_NAMESPACE, else the alert's
# `namespace` label, else "default". When ROLLBACKD_DRY_RUN=1, or kubectl is
# not installed, it says what it would do (and exits non-zero without
# kubectl, so a missing tool never looks like a successful rollback).
set -eu

name_ok() {
	case "$1" in
		"" | -* | *[!A-Za-z0-9._-]*) return 1 ;;
	esac
	return 0
}

service=${1:-}
if ! name_ok "$service"; then
	echo "rollback.sh: refusing service name '$service' (expected [A-Za-z0-9._-]+)" >&2
	exit 2
fi
namespace=${ROLLBACKD_NAMESPACE:-${ROLLBACKD_LABEL_NAMESPACE:-default}}
if ! name_ok "$namespace"; then
	echo "rollback.sh: refusing namespace '$namespace' (expected [A-Za-z0-9._-]+)" >&2
	exit 2
fi
to=${2:-${ROLLBACKD_CHANGE_PREVIOUS_REVISION:-}}
case "$to" in
	"") ;;
	*[!0-9]*)
		echo "rollback.sh: refusing revision '$to' (expected a deployment revision number)" >&2
		exit 2 ;;
esac
deploy="deployment/$service"
want=${to:-"<the revision before the current one>"}

if [ "${ROLLBACKD_DRY_RUN:-0}" = "1" ]; then
	echo "rollback.sh: dry-run: would run: kubectl -n $namespace rollout undo $deploy --to-revision=$want"
	exit 0
fi
if ! command -v kubectl >/dev/null 2>&1; then
	echo "rollback.sh: kubectl not found; would run: kubectl -n $namespace rollout undo $deploy --to-revision=$want" >&2
	exit 3
fi

# Revision numbers, ascending, from `kubectl rollout history` (a header
# line, then "REVISION  CHANGE-CAUSE" rows).
revisions() {
	kubectl -n "$namespace" rollout history "$deploy" |
		awk '$1 ~ /^[0-9]+$/ { print $1 }' | sort -n
}

revs=$(revisions)
current=$(printf '%s\n' "$revs" | tail -n 1)
if [ -z "$current" ]; then
	echo "rollback.sh: $deploy in $namespace has no revision history" >&2
	exit 4
fi
done_rev=$(kubectl -n "$namespace" get "$deploy" \
	-o 'jsonpath={.metadata.annotations.rollbackd\.io/rolled-back-revision}')
if [ "$done_rev" = "$current" ]; then
	echo "rollback.sh: $deploy is still at revision $current, which an earlier rollback produced; nothing to do"
	exit 0
fi
if [ -z "$to" ]; then
	to=$(printf '%s\n' "$revs" | tail -n 2 | head -n 1)
	if [ "$to" = "$current" ]; then
		echo "rollback.sh: $deploy has only revision $current; nothing to roll back to" >&2
		exit 4
	fi
elif [ "$to" = "$current" ]; then
	echo "rollback.sh: $deploy is already at revision $to; nothing to do"
	exit 0
elif ! printf '%s\n' "$revs" | grep -qx "$to"; then
	echo "rollback.sh: revision $to is not in the history of $deploy (revisions:" $revs")" >&2
	exit 4
fi

echo "rollback.sh: incident ${ROLLBACKD_INCIDENT:-?}: $deploy in $namespace: revision $current -> $to"
kubectl -n "$namespace" rollout undo "$deploy" --to-revision="$to"
new=$(revisions | tail -n 1)
kubectl -n "$namespace" annotate "$deploy" --overwrite \
	"rollbackd.io/rolled-back-revision=$new" "rollbackd.io/rolled-back-to=$to" \
	"rollbackd.io/incident=${ROLLBACKD_INCIDENT:-}"
kubectl -n "$namespace" rollout status "$deploy" --timeout=120s
