-- wrk.lua -- the wrk script of bench/run.py and bench/soak.py: wrk's own
-- counts, latency and (when asked) a check of every answer, reported by
-- done() as one line of JSON.
--
--   wrk -s wrk.lua URL                                  count only
--   wrk -s wrk.lua URL -- METHOD BODY_BYTES EXPECT [PROGRESS_DIR]
--
-- Without arguments no answer is looked at (no per-answer Lua, so wrk runs
-- at full speed): wrk itself counts non-2xx/3xx answers ("status") and its
-- socket errors. With arguments (the interface of tests/integration/lua/
-- check.lua, of which this is a superset):
--   METHOD       GET or POST
--   BODY_BYTES   POST: send a body of this many bytes (a fixed pattern); 0: none
--   EXPECT       the exact body a 200 must carry; "-": any body for a GET, and
--                for a POST the body sent, byte for byte (an echo); "*": any
--                body at all (nginx cannot echo)
--   PROGRESS_DIR each thread writes its count of good answers to a file here
--                every 64 answers, so a caller can see that the load flows
-- and every answer that is not a 200 with the expected body counts in "bad"
-- (the first is kept as "sample", the CLOCK_MONOTONIC ms of the first 20 in
-- "bad_ms"), and good ones are counted in 100 ms buckets of CLOCK_MONOTONIC
-- (LuaJIT ffi), the clock Python's time.monotonic() reads, so a caller can
-- line them up with what it did meanwhile.
--
-- done() prints one line:
--   WRK_JSON {"requests":N,"duration_us":N,"bytes":N,"connect":N,"read":N,
--             "write":N,"status":N,"timeout":N,"bad":N,"sample":"...",
--             "bad_ms":[...],"latency_us":{"p50":N,"p90":N,"p99":N,
--             "max":N,"mean":N},"buckets":{"BUCKET_START_MS":COUNT,...}}
-- connect/read/write/timeout are wrk's socket errors: a request on a
-- kept-alive connection that the server closes without an answer is a read
-- error, because wrk never sends a request twice.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec_t")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) * 1000 + math.floor(tonumber(ts.tv_nsec) / 1000000)
end

-- Main state: the threads, so that done() can collect their counts.
local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

-- Thread state, read back by done() through thread:get().
good, bad, sample, bad_ms, buckets = 0, 0, "", {}, {}
local expect, any_body, progress_path

function init(args)
   if #args == 0 then
      -- wrk asks for response() after thread 1's init: without it, wrk
      -- skips header and body callbacks altogether.
      response = nil
      return
   end
   local size = tonumber(args[2] or "0")
   wrk.method = args[1]
   if size > 0 then
      local unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
      wrk.body = string.rep(unit, math.floor(size / #unit) + 1):sub(1, size)
      wrk.headers["Content-Type"] = "application/octet-stream"
   end
   local e = args[3] or "-"
   if e == "*" or (e == "-" and size == 0) then
      any_body = true
   elseif e == "-" then
      expect = wrk.body
   else
      expect = e
   end
   if args[4] then
      progress_path = args[4] .. "/thread-" .. id
   end
end

function response(status, headers, body)
   local t = now_ms()
   if status == 200 and (any_body or body == expect) then
      local k = t - t % 100
      buckets[k] = (buckets[k] or 0) + 1
      good = good + 1
      if progress_path and good % 64 == 0 then
         local f = io.open(progress_path, "w")
         if f then
            f:write(good)
            f:close()
         end
      end
      return
   end
   bad = bad + 1
   if #bad_ms < 20 then
      table.insert(bad_ms, t)
   end
   if sample == "" then
      sample = "status " .. status .. " body " .. string.sub(body or "", 1, 120)
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

function done(summary, latency, requests)
   local nbad, first, times, merged = 0, "", {}, {}
   for _, t in ipairs(threads) do
      nbad = nbad + t:get("bad")
      if first == "" then
         first = t:get("sample")
      end
      for _, ms in ipairs(t:get("bad_ms")) do
         table.insert(times, string.format("%d", ms))
      end
      for k, n in pairs(t:get("buckets")) do
         merged[k] = (merged[k] or 0) + n
      end
   end
   local parts = {}
   for k, n in pairs(merged) do
      table.insert(parts, string.format('"%d":%d', k, n))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"bad":%d,"sample":%s,"bad_ms":[%s],' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"buckets":{%s}}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, nbad, json_string(first), table.concat(times, ","),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, table.concat(parts, ",")))
end
