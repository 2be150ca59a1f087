-- wrk script for bench/data.sh: rotates through a file of request paths, one per line, with an
-- optional Authorization header. Requests are formatted once, in init.
--
--   wrk -t1 -c8 -d10s --latency -s bench/paths.lua http://127.0.0.1:PORT -- PATHFILE [KEY]
--
-- done() prints: RESULT rps=… p50_us=… p99_us=… requests=… non2xx=… errors=…

local requests = {}
local n = 0
counter = 0

function init(args)
  local file = assert(args[1], "usage: -- PATHFILE [KEY]")
  local headers = {}
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
  for line in io.lines(file) do
    if line ~= "" then
      n = n + 1
      requests[n] = wrk.format("GET", line, headers)
    end
  end
  assert(n > 0, "no paths in " .. file)
end

function request()
  counter = counter + 1
  return requests[(counter % n) + 1]
end

function done(summary, latency, requests_)
  local non2xx = summary.errors.status
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, non2xx, errors))
end
