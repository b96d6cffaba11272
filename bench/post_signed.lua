-- wrk script: POST one fixed, pre-signed Alertmanager payload.
--
-- Environment (set by bench/intake.sh):
--   BENCH_BODY_FILE    payload to send (default tests/data/am_firing_3.json)
--   BENCH_SIG_HEADER   name of the signature header, e.g. X-Rollbackd-Signature
--                      or X-Hub-Signature-256 (unset: no signature header)
--   BENCH_SIG_VALUE    its value, computed once before the run (the rollbackd
--                      scheme carries a timestamp: sign right before wrk starts,
--                      and keep the run shorter than max_skew)
--   BENCH_AUTHORIZATION  optional Authorization header value (bearer / basic)
--
-- done() prints one machine-readable line:
--   BENCH_RESULT requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N
--                non2xx=N connect_err=N read_err=N write_err=N timeout_err=N

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local path = env("BENCH_BODY_FILE", "tests/data/am_firing_3.json")
local f = assert(io.open(path, "rb"), "cannot open " .. path)
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local sig_header = env("BENCH_SIG_HEADER", nil)
if sig_header then
  wrk.headers[sig_header] = assert(env("BENCH_SIG_VALUE", nil), "BENCH_SIG_VALUE not set")
end
local authz = env("BENCH_AUTHORIZATION", nil)
if authz then wrk.headers["Authorization"] = authz end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
