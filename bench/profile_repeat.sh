#!/usr/bin/env bash
# Where a repeated notification's time goes: rollbackd under callgrind,
# N identical signed 3-alert notifications over one keep-alive connection.
#
#   bench/profile_repeat.sh [ROLLBACKD_BIN] [N]     (defaults: build/rollbackd, 2000)
#
# Each request is signed afresh, as a signing proxy in front of Alertmanager
# would sign each resend: the body differs only in trailing whitespace
# (the alerts are byte-for-byte the same), so every request passes the
# replay guard and reaches the engine, which sees an exact repeat.
# SAME_SIGNATURE=1 sends one signed request over and over instead: the
# replay guard then answers from its cache (what bench/intake.sh measured
# before it varied the requests).
# The first 50 requests (the first one is new and journaled; the rest are
# repeats) warm up; then the counters are zeroed, N requests are sent and
# the profile is dumped, so the figures are N repeats and nothing else.
# Prints instructions per request and callgrind_annotate's inclusive top
# functions. Needs valgrind and python3. KEEP=1 keeps the temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
BIN=${1:-build/rollbackd}
N=${2:-2000}
PAYLOAD=${PAYLOAD:-tests/data/am_firing_3.json}
tmp=$(mktemp -d /tmp/rollbackd-prof.XXXXXX)
pid=""
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[[ -n ${KEEP:-} ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/hmac.key"
mkdir -p "$tmp/rules" "$tmp/state"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "rules": "$tmp/rules", "state_dir": "$tmp/state",
 "log_level": "warn", "auth": {"hmac": {"secrets": [{"file": "$tmp/hmac.key"}], "max_skew": "5m"}}}
JSON
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$BIN" serve --config "$tmp/cfg.json" \
	2>"$tmp/vg.log" &
pid=$!
send() { # count first-variant
	python3 - "$port" "$tmp/hmac.key" "$PAYLOAD" "$1" "$2" "${SAME_SIGNATURE:-}" <<'PY'
import hashlib, hmac, http.client, sys, time
port, keyf, path, n, first, same = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
key = open(keyf, "rb").read().rstrip(b"\n")
body = open(path, "rb").read()
for i in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        c.request("GET", "/healthz"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.1)
t = int(time.time())
base = body.rstrip()
def variant(i):
    if same:
        return body
    return base + b"".join(b"\n" if (i >> k) & 1 else b" " for k in range(20))
for i in range(first, first + n):
    b = variant(i)
    sig = "t=%d,v1=%s" % (t, hmac.new(key, b"%d." % t + b, hashlib.sha256).hexdigest())
    c.request("POST", "/v1/alerts", b, {"Content-Type": "application/json",
                                        "X-Rollbackd-Signature": sig})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit("request %d: HTTP %d" % (i, r.status))
PY
}
send 50 0
callgrind_control -z "$pid" >/dev/null
send "$N" 50
callgrind_control -d "$pid" >/dev/null
sleep 1
out=$(ls -t "$tmp"/cg.out* | head -1)
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "$N repeated notifications: $total instructions, $((total / N)) per request"
callgrind_annotate --inclusive=yes --auto=no --threshold=99.9 "$out" 2>/dev/null | sed -n '/file:function/,$p' | head -${TOP:-45}
