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
--   BENCH_SIG_FILE     optional: one signature per line; request i (counted
--                      over all threads) then sends variant i of the body --
--                      the body with trailing whitespace cut, plus 20 spaces
--                      and newlines spelling i in binary (bit k set: "\n") --
--                      signed by line i+1. Every request is then a new signed
--                      request with the same alerts: a signing proxy's resend
--                      of a repeated notification, not a replay of one.
--   BENCH_THREADS      wrk's -t, so that threads take disjoint variants
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

local sig_file = env("BENCH_SIG_FILE", nil)
local threads, next_id = {}, 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local sigs, base, at, step
wrapped = 0

function init(args)
  if not sig_file then return end
  sigs = {}
  for line in io.lines(sig_file) do sigs[#sigs + 1] = line end
  base = body:gsub("%s+$", "")
  at = id or 0
  step = tonumber(env("BENCH_THREADS", "1"))
end

local function variant(i)
  local t = {}
  for k = 0, 19 do t[k + 1] = bit.band(bit.rshift(i, k), 1) == 1 and "\n" or " " end
  return base .. table.concat(t)
end

if sig_file then
  function request()
    local i = at
    at = at + step
    if i >= #sigs then
      wrapped = wrapped + 1 -- a repeat of an earlier variant: the replay guard's path
      i = i % #sigs
    end
    wrk.headers[sig_header] = sigs[i + 1]
    return wrk.format(nil, nil, nil, variant(i))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local reused = 0
  for _, t in ipairs(threads) do reused = reused + (tonumber(t:get("wrapped")) or 0) end
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d reused_variants=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, reused))
end
