#!/usr/bin/env bash
# Intake benchmark: rollbackd vs adnanh/webhook, side by side.
#
#   bench/intake.sh [ROLLBACKD_BIN]        (default: build/rollbackd)
#
# Both servers receive the same signed 3-alert Alertmanager payload
# (tests/data/am_firing_3.json) from `wrk -t2 -c32 -d10s --latency`
# (bench/post_signed.lua). Rows:
#
#   rollbackd-default  X-Rollbackd-Signature  t=<unix>,v1=HMAC-SHA256(secret, "<t>." + body),
#                                             "workers" left at its default
#   rollbackd-auto     X-Rollbackd-Signature  same, "workers": "auto" (one loop per CPU)
#   rollbackd-github   X-Hub-Signature-256    allow_untimestamped=true, same scheme as webhook
#   webhook            X-Hub-Signature-256    trigger-rule: payload-hmac-sha256 AND
#                                             alerts.0.labels.service == "checkout"
#   floor              X-Hub-Signature-256    build/evhttp_floor: one bare evhttp loop that
#                                             reads the body, checks its HMAC, answers JSON
#
# This script builds nothing. Tunables (environment):
#   DURATION=10s THREADS=2 CONNECTIONS=32   wrk parameters
#   WORKERS=                                rollbackd "workers" of rollbackd-default and
#                                           rollbackd-github (empty: the config's default)
#   FLOOR_BIN=<dir of rollbackd>/evhttp_floor
#   PAYLOAD=tests/data/am_firing_3.json     body to post
#   WEBHOOK_BIN=webhook WRK_BIN=wrk
#   WEBHOOK_CMD=/nonexistent/rollback       webhook's execute-command: a path that does not
#                                           exist, so the hook matches (HMAC + label) and
#                                           answers 200 but executes nothing (LookPath fails)
#   ROWS="rollbackd-default rollbackd-auto webhook floor"
#   VARY=1                                  every request a new signed request: variant i
#                                           of the body (trailing whitespace spelling i, the
#                                           same alerts) with its own signature, so each one
#                                           passes rollbackd's replay guard and reaches the
#                                           engine as an exact repeat. VARIANTS=400000 of
#                                           them are signed before the runs. VARY=0: one
#                                           signed request sent over and over (rollbackd's
#                                           replay guard then answers from its cache).
#   KEEP=1                                  keep the temp dir (configs, logs)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

BIN=${1:-build/rollbackd}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-}
PAYLOAD=${PAYLOAD:-tests/data/am_firing_3.json}
WEBHOOK_BIN=${WEBHOOK_BIN:-webhook}
WRK_BIN=${WRK_BIN:-wrk}
WEBHOOK_CMD=${WEBHOOK_CMD:-/nonexistent/rollback}
ROWS=${ROWS:-"rollbackd-default rollbackd-auto webhook floor"}
VARY=${VARY:-1}
VARIANTS=${VARIANTS:-400000}

die() { echo "intake.sh: $*" >&2; exit 1; }

[[ -x $BIN ]] || die "rollbackd binary '$BIN' not found or not executable (build it first)"
command -v "$WRK_BIN" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found"
if [[ " $ROWS " == *" webhook "* ]]; then
	command -v "$WEBHOOK_BIN" >/dev/null || die "webhook not found (apt-get install webhook)"
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
FLOOR_BIN=${FLOOR_BIN:-$(dirname "$BIN")/evhttp_floor}
if [[ " $ROWS " == *" floor "* ]]; then
	[[ -x $FLOOR_BIN ]] || die "'$FLOOR_BIN' not found (cmake --build build --target evhttp_floor)"
fi

tmp=$(mktemp -d /tmp/rollbackd-bench.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ -n ${KEEP:-} ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- payload
if [[ ! -f $PAYLOAD ]]; then
	echo "note: $PAYLOAD missing; generating a 3-alert payload" >&2
	PAYLOAD=$tmp/payload.json
	python3 - "$PAYLOAD" <<'PY'
import json, sys
sys.path.insert(0, "tests/integration")
import harness
p = harness.make_payload(3)
open(sys.argv[1], "w").write(json.dumps(p))
PY
fi
PAYLOAD=$(cd "$(dirname "$PAYLOAD")" && pwd)/$(basename "$PAYLOAD")
python3 - "$PAYLOAD" <<'PY' || die "$PAYLOAD: alerts[0].labels.service must be \"checkout\" for webhook's match rule"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["alerts"][0]["labels"].get("service") == "checkout"
PY

# ---------------------------------------------------------------- secrets
umask 077
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$tmp/hmac.key"
mkdir -p "$tmp/rules" "$tmp/state"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url expected-status-regex
	local i
	for i in $(seq 1 100); do
		if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
PY
		sleep 0.1
	done
	return 1
}

# Check one request by hand before the run, so a misconfiguration is not
# measured as 30k fast 401s. Prints the status.
probe() { # url header value
	python3 - "$1" "$2" "$3" "$PAYLOAD" <<'PY'
import sys, urllib.request, urllib.error
url, h, v, path = sys.argv[1:5]
req = urllib.request.Request(url, data=open(path, "rb").read(), method="POST",
                             headers={"Content-Type": "application/json", h: v})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}

github_sig() {
	python3 - "$tmp/hmac.key" "$PAYLOAD" <<'PY'
import hashlib, hmac, sys
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
print("sha256=" + hmac.new(key, open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())
PY
}

rollbackd_sig() {
	local v
	if v=$("$BIN" sign --secret-file "$tmp/hmac.key" <"$PAYLOAD" 2>/dev/null) && [[ $v == t=*,v1=* ]]; then
		echo "$v"
	else
		python3 - "$tmp/hmac.key" "$PAYLOAD" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
t = int(time.time())
print("t=%d,v1=%s" % (t, hmac.new(key, b"%d." % t + open(sys.argv[2], "rb").read(),
                                   hashlib.sha256).hexdigest()))
PY
	fi
}

kib() { awk '/^'"$2"':/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

start_rollbackd() { # allow_untimestamped [workers JSON value] -> sets srv_pid srv_url
	local port cfg workers=""
	port=$(free_port)
	cfg=$tmp/rollbackd-$port.json
	[[ -n ${2:-} ]] && workers="\"workers\": $2,"
	cat >"$cfg" <<EOF
{
  "listen": "127.0.0.1:$port",
  "rules": "$tmp/rules",
  "state_dir": "$tmp/state/$port",
  "log_level": "warn",
  $workers
  "auth": {"hmac": {"secrets": [{"file": "$tmp/hmac.key"}], "max_skew": "5m",
                    "allow_untimestamped": $1}}
}
EOF
	mkdir -p "$tmp/state/$port"
	"$BIN" serve --config "$cfg" 2>"$tmp/rollbackd-$port.log" &
	srv_pid=$!
	pids+=("$srv_pid")
	srv_url=http://127.0.0.1:$port/v1/alerts
	wait_http "http://127.0.0.1:$port/healthz" ||
		die "rollbackd did not come up: $(tail -5 "$tmp/rollbackd-$port.log")"
}

start_webhook() { # -> sets srv_pid srv_url
	local port
	port=$(free_port)
	cat >"$tmp/hooks.json" <<EOF
[
  {
    "id": "alerts",
    "execute-command": "$WEBHOOK_CMD",
    "response-message": "accepted",
    "http-methods": ["POST"],
    "trigger-rule-mismatch-http-response-code": 401,
    "trigger-rule": {
      "and": [
        {"match": {"type": "payload-hmac-sha256", "secret": "$secret",
                   "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
        {"match": {"type": "value", "value": "checkout",
                   "parameter": {"source": "payload", "name": "alerts.0.labels.service"}}}
      ]
    }
  }
]
EOF
	"$WEBHOOK_BIN" -hooks "$tmp/hooks.json" -ip 127.0.0.1 -port "$port" \
		>"$tmp/webhook.log" 2>&1 &
	srv_pid=$!
	pids+=("$srv_pid")
	srv_url=http://127.0.0.1:$port/hooks/alerts
	wait_http "http://127.0.0.1:$port/" || true # webhook answers 200 on /
	local i
	for i in $(seq 1 50); do
		[[ $(probe "$srv_url" X-Hub-Signature-256 "$(github_sig)") == 200 ]] && return 0
		sleep 0.1
	done
	die "webhook did not accept the signed payload: $(tail -5 "$tmp/webhook.log")"
}

start_floor() { # -> sets srv_pid srv_url
	local port
	port=$(free_port)
	"$FLOOR_BIN" "$port" "$tmp/hmac.key" >"$tmp/floor.log" 2>&1 &
	srv_pid=$!
	pids+=("$srv_pid")
	srv_url=http://127.0.0.1:$port/v1/alerts
	local i
	for i in $(seq 1 50); do
		[[ $(probe "$srv_url" X-Hub-Signature-256 "$(github_sig)" 2>/dev/null) == 200 ]] && return 0
		sleep 0.1
	done
	die "evhttp_floor did not accept the signed payload: $(tail -5 "$tmp/floor.log")"
}

stop_server() {
	kill -TERM "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
}

# Signatures of every body variant (post_signed.lua builds the bodies), for
# both schemes; the rollbackd scheme's timestamp is now, valid for max_skew.
if [[ $VARY == 1 ]]; then
	python3 - "$tmp/hmac.key" "$PAYLOAD" "$VARIANTS" "$tmp" <<'PY'
import hashlib, hmac, sys, time
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
base = open(sys.argv[2], "rb").read().rstrip()
n, out = int(sys.argv[3]), sys.argv[4]
t = int(time.time())
pre = b"%d." % t
with open(out + "/sigs-rollbackd", "w") as fr, open(out + "/sigs-github", "w") as fg:
    for i in range(n):
        b = base + b"".join(b"\n" if (i >> k) & 1 else b" " for k in range(20))
        fr.write("t=%d,v1=%s\n" % (t, hmac.new(key, pre + b, hashlib.sha256).hexdigest()))
        fg.write("sha256=%s\n" % hmac.new(key, b, hashlib.sha256).hexdigest())
PY
fi

results=()
run_row() { # name header loops
	local name=$1 header=$2 loops=$3 value status rss0 out line hwm
	if [[ $header == X-Rollbackd-Signature ]]; then value=$(rollbackd_sig); else value=$(github_sig); fi
	status=$(probe "$srv_url" "$header" "$value")
	[[ $status == 200 ]] || die "$name: probe request got HTTP $status, not 200 (see $tmp)"
	rss0=$(kib "$srv_pid" VmRSS)
	echo "== $name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $srv_url" >&2
	local sigs=""
	if [[ $VARY == 1 ]]; then
		sigs=$tmp/sigs-github
		[[ $header == X-Rollbackd-Signature ]] && sigs=$tmp/sigs-rollbackd
	fi
	out=$(BENCH_BODY_FILE=$PAYLOAD BENCH_SIG_HEADER=$header BENCH_SIG_VALUE=$value \
		BENCH_SIG_FILE=$sigs BENCH_THREADS=$THREADS \
		"$WRK_BIN" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
		-s "$here/post_signed.lua" "$srv_url")
	echo "$out" | sed 's/^/   /' >&2
	hwm=$(kib "$srv_pid" VmHWM)
	line=$(echo "$out" | grep '^BENCH_RESULT' || true)
	[[ -n $line ]] || die "$name: no BENCH_RESULT line from wrk"
	[[ $(field "$line" reused_variants) == 0 ]] ||
		echo "warning: $name: $(field "$line" reused_variants) requests reused a body variant (raise VARIANTS)" >&2
	results+=("$name|$header|$loops|$line|$rss0|$hwm")
}

fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

rbver=$("$BIN" --version | awk '{print $2}')
# Event loops of a server: rollbackd gives each loop its own SO_REUSEPORT
# listening socket, so count the listening sockets on its port (the config's
# default "workers" is then read from the running daemon, not assumed).
loops_of() { # url
	python3 - "$1" <<'PY'
import sys
port = int(sys.argv[1].split(":")[2].split("/")[0])
n = 0
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
        n += 1
print(n)
PY
}
for row in $ROWS; do
	case $row in
	rollbackd-default | rollbackd-hmac)
		start_rollbackd false "$WORKERS"
		run_row "rollbackd $rbver workers=${WORKERS:-default}" X-Rollbackd-Signature "$(loops_of "$srv_url")"
		stop_server ;;
	rollbackd-auto)
		start_rollbackd false '"auto"'
		run_row "rollbackd $rbver workers=auto" X-Rollbackd-Signature "$(loops_of "$srv_url")"
		stop_server ;;
	rollbackd-github)
		start_rollbackd true "$WORKERS"
		run_row "rollbackd $rbver workers=${WORKERS:-default}" X-Hub-Signature-256 "$(loops_of "$srv_url")"
		stop_server ;;
	webhook)
		start_webhook
		run_row "webhook $("$WEBHOOK_BIN" -version 2>&1 | awk '{print $NF}')" X-Hub-Signature-256 "-"
		stop_server ;;
	floor)
		start_floor
		run_row "evhttp+HMAC floor" X-Hub-Signature-256 1
		stop_server ;;
	*) die "unknown row '$row'" ;;
	esac
done

# Ratios against the rows of this run: throughput / webhook's, p99 / webhook's,
# and (req/s per event loop) / the bare floor's req/s.
ref_rps="" ref_p99="" floor_rps=""
for r in "${results[@]}"; do
	IFS='|' read -r name header loops line rss0 hwm <<<"$r"
	[[ $name == webhook* ]] && ref_rps=$(field "$line" rps) && ref_p99=$(field "$line" p99_us)
	[[ $name == "evhttp+HMAC floor" ]] && floor_rps=$(field "$line" rps)
done
ratio() { # a b -> a/b with 2 decimals, or "-"
	if [[ -n $2 && $2 != 0 && -n $1 ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; else echo -; fi
}

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, payload $(basename "$PAYLOAD") ($(wc -c <"$PAYLOAD") bytes), $(nproc) CPUs, VARY=$VARY"
echo
echo "| server | auth header | loops | req/s | p50 | p99 | × webhook req/s | × webhook p99 | per loop × floor | non-2xx | socket errors | RSS idle | peak RSS (VmHWM) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
	IFS='|' read -r name header loops line rss0 hwm <<<"$r"
	errs=$(($(field "$line" connect_err) + $(field "$line" read_err) + $(field "$line" write_err) + $(field "$line" timeout_err)))
	rps=$(field "$line" rps)
	perloop=-
	[[ $loops =~ ^[0-9]+$ ]] && perloop=$(ratio "$(awk -v a="$rps" -v n="$loops" 'BEGIN{print a/n}')" "$floor_rps")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s MiB | %s MiB |\n' \
		"$name" "$header" "$loops" "$rps" "$(fmt_ms "$(field "$line" p50_us)")" \
		"$(fmt_ms "$(field "$line" p99_us)")" "$(ratio "$rps" "$ref_rps")" \
		"$(ratio "$(field "$line" p99_us)" "$ref_p99")" "$perloop" \
		"$(field "$line" non2xx)" "$errs" \
		"$(awk -v k="$rss0" 'BEGIN{printf "%.1f", k/1024}')" \
		"$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')"
done
