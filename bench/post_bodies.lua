-- wrk script for bench/web.py: POST pre-signed webhook bodies, each at most once per run.
-- Usage: wrk -s post_bodies.lua <url> -- <directory>
-- Thread n reads <directory>/bodies-<n>.txt: one "<X-Hub-Signature-256 value>\t<body>" per line.
-- done() prints one line, "BENCH_RESULT {json}", that bench/web.py reads.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] .. "/bodies-" .. thread_number .. ".txt"
  signatures, bodies = {}, {}
  for line in io.lines(path) do
    local tab = line:find("\t", 1, true)
    signatures[#signatures + 1] = line:sub(1, tab - 1)
    bodies[#bodies + 1] = line:sub(tab + 1)
  end
  index, sent, wraps = 0, 0, 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  index = index + 1
  if index > #bodies then
    index, wraps = 1, wraps + 1
  end
  sent = sent + 1
  headers["X-Hub-Signature-256"] = signatures[index]
  return wrk.format("POST", nil, headers, bodies[index])
end

function done(summary, latency, requests)
  local sent_total, wraps_total = 0, 0
  for _, thread in ipairs(threads) do
    sent_total = sent_total + thread:get("sent")
    wraps_total = wraps_total + thread:get("wraps")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"sent":%d,"wraps":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, sent_total, wraps_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
