-- wrk script for the gateway overhead benchmark: POSTs one small non-stream chat request.
-- Env: GW_MODEL (model id, default "standin"), GW_KEY (sent as a Bearer token when set).
-- No response() hook (it would slow wrk down): wrk itself reports non-2xx answers and
-- socket errors, which gateway-overhead.sh checks.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("GW_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local model = os.getenv("GW_MODEL") or "standin"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello."}],'
  .. '"max_tokens":16,"temperature":0}'

-- One machine-readable line for gateway_report.py (latencies in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "GWRESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f "
      .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
