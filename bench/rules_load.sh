#!/bin/sh
# Rule-set load time: generate N rules (default 10 000) with matchers, a
# value condition, a regex and two actions each, then time
# `rollbackd check-rules` with hyperfine (load + validate + compile regexes).
#   bench/rules_load.sh [path/to/rollbackd] [N]
set -eu
BIN=${1:-build/rollbackd}
N=${2:-10000}
tmp=$(mktemp -d /tmp/rollbackd-rules.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python3 - "$N" > "$tmp/rules.json" <<'PY'
import json, sys
n = int(sys.argv[1])
rules = [{
    "name": f"rule-{i}",
    "matchers": [f'alertname="Alert{i % 50}"', f'service=~"svc-{i}|svc-{i}-canary"'],
    "when": {"value": {"from": "annotations.value", "above": 0.01}},
    "group_by": ["service"],
    "cooldown": "30m",
    "actions": [
        {"type": "http", "method": "PATCH", "url": "http://flags.internal/api/flags/{{labels.service}}",
         "body": {"enabled": False}, "expect_status": [200, 204], "retries": 3},
        {"type": "exec", "argv": ["deploy/rollback.sh", "{{labels.service}}"], "timeout": "2m"},
    ],
} for i in range(n)]
print(json.dumps({"rules": rules}))
PY
echo "rules: $N in $(du -h "$tmp/rules.json" | cut -f1)" >&2
if command -v hyperfine >/dev/null 2>&1; then
	hyperfine --warmup 1 --runs 10 "$BIN check-rules $tmp/rules.json"
else
	time "$BIN" check-rules "$tmp/rules.json"
fi
