-- wrk script for bench/api.sh: rotates the Authorization header through a file of API keys.
--
--   wrk -t1 -c64 -d10s --latency -s bench/rotate.lua URL -- KEYFILE [OFFSET] [LIMIT]
--
-- KEYFILE holds one key per line; request i (counting from OFFSET) sends key (i % n) + 1.
-- LIMIT (optional) reads only the first LIMIT keys. Requests are formatted once, in init, so the
-- per-request Lua cost is a table lookup: the load generator must not be what is measured.
-- done() prints one machine-readable line for the script:
--   RESULT rps=… p50_us=… p99_us=… requests=… non2xx=… connect_errors=… io_errors=… sent=… keys=… wrapped=…

local requests = {}
local n = 0
counter = 0

function init(args)
  local file = assert(args[1], "usage: -- KEYFILE [OFFSET] [LIMIT]")
  local offset = tonumber(args[2] or "0")
  local limit = tonumber(args[3] or "0")
  local path = wrk.path
  for line in io.lines(file) do
    if line ~= "" then
      n = n + 1
      requests[n] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
      if limit > 0 and n >= limit then break end
    end
  end
  assert(n > 0, "no keys in " .. file)
  counter = offset
  keys = n
  start = offset
end

function request()
  local r = requests[(counter % n) + 1]
  counter = counter + 1
  return r
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, _)
  local sent, keys = 0, 0
  for _, t in ipairs(threads) do
    sent = sent + (t:get("counter") - t:get("start"))
    keys = t:get("keys")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT rps=%.0f p50_us=%d p99_us=%d requests=%d non2xx=%d connect_errors=%d io_errors=%d sent=%d keys=%d wrapped=%s\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.requests, errors.status, errors.connect, errors.read + errors.write + errors.timeout, sent, keys,
    tostring(sent > keys)))
end
