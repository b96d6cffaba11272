#!/bin/sh
# A stand-in for kubectl, for the tests and the docker/compose.yml demo
# stack: deploy/rollback.sh runs unmodified and calls this instead of a real
# cluster. It prints what it was asked to do (rollbackd keeps an action's
# output in the incident and the journal), and appends one line
#     <unix time>\t<ROLLBACKD_INCIDENT>\t<arguments>
# to kubectl.log next to itself when that directory is writable (the tests
# count those lines).
#
# It keeps a little deployment state in kubectl.state/ next to itself (or in
# $FAKE_KUBECTL_STATE, or $TMPDIR/fake-kubectl.state when its own directory
# is read-only), one file per namespace and deployment, so that
# rollback.sh's history / undo --to-revision / annotate calls behave like a
# cluster's:
#   <ns>_<name>.revisions   revision numbers, ascending (default "1 2")
#   <ns>_<name>.annotations one key=value per line
# `rollout undo --to-revision=N` moves revision N to the top (N disappears,
# max+1 appears), as Kubernetes renumbers the revision it rolls back to, and
# fails like kubectl for a revision not in the history. Every other command
# just succeeds.
here=$(dirname "$0")
log="$here/kubectl.log"
now=$(date +%s.%N)
printf '%s\t%s\t%s\n' "$now" "${ROLLBACKD_INCIDENT:-}" "$*" >>"$log" 2>/dev/null || true
state=${FAKE_KUBECTL_STATE:-$here/kubectl.state}
if ! mkdir -p "$state" 2>/dev/null || [ ! -w "$state" ]; then
	# a read-only mount (docker/compose.yml): keep the state in /tmp
	state=${TMPDIR:-/tmp}/fake-kubectl.state
	mkdir -p "$state" 2>/dev/null || state=
fi

ns=default
if [ "${1:-}" = "-n" ]; then
	ns=$2
	shift 2
fi
verb="${1:-} ${2:-}"
obj=
for a in "$@"; do
	case "$a" in deployment/*) obj=${a#deployment/} ;; esac
done
key="${ns}_${obj}"
revs_file="$state/$key.revisions"
ann_file="$state/$key.annotations"
revs() {
	if [ -f "$revs_file" ]; then cat "$revs_file"; else echo "1 2"; fi
}

if [ -n "$state" ] && [ -n "$obj" ]; then
	case "$verb" in
	"rollout history")
		echo "deployment.apps/$obj"
		echo "REVISION  CHANGE-CAUSE"
		for r in $(revs); do echo "$r         <none>"; done
		exit 0 ;;
	"rollout undo")
		to=
		for a in "$@"; do
			case "$a" in --to-revision=*) to=${a#--to-revision=} ;; esac
		done
		cur=$(revs)
		max=0
		for r in $cur; do [ "$r" -gt "$max" ] && max=$r; done
		if [ -z "$to" ]; then
			to=$(echo "$cur" | tr ' ' '\n' | sort -n | tail -n 2 | head -n 1)
		fi
		if ! echo " $cur " | grep -q " $to "; then
			echo "error: unable to find specified revision $to in history" >&2
			exit 1
		fi
		echo "$(echo " $cur " | sed "s/ $to / /") $((max + 1))" | tr -s ' ' | sed 's/^ //; s/ $//' >"$revs_file"
		echo "fake kubectl: -n $ns $*"
		echo "deployment.apps/$obj rolled back"
		exit 0 ;;
	"get deployment/"*)
		for a in "$@"; do
			case "$a" in
			jsonpath=*rolled-back-revision*)
				[ -f "$ann_file" ] && sed -n 's/^rollbackd.io\/rolled-back-revision=//p' "$ann_file"
				exit 0 ;;
			esac
		done ;;
	"annotate deployment/"*)
		shift 2
		for a in "$@"; do
			case "$a" in
			*=*)
				k=${a%%=*}
				[ -f "$ann_file" ] && grep -v "^$k=" "$ann_file" >"$ann_file.tmp"
				[ -f "$ann_file.tmp" ] || : >"$ann_file.tmp"
				echo "$a" >>"$ann_file.tmp"
				mv "$ann_file.tmp" "$ann_file" ;;
			esac
		done
		echo "deployment.apps/$obj annotated"
		exit 0 ;;
	esac
fi
echo "fake kubectl: -n $ns $*"
exit 0
