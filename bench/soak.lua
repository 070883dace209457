-- soak.lua -- the wrk script of bench/soak.py: checks every answer and counts
-- good ones in 100 ms buckets of CLOCK_MONOTONIC time.
--
--   wrk -t1 -s soak.lua URL -- METHOD BODY_BYTES CHECK_BODY
--
-- METHOD       GET or POST
-- BODY_BYTES   POST: send a body of this many bytes (a fixed pattern); 0: none
-- CHECK_BODY   1: a POST's answer must be the body sent, byte for byte (the
--              inflight example's /echo); 0: any body (nginx cannot echo)
--
-- An answer is good if its status is 200 (and, with CHECK_BODY, its body is
-- the one sent); every other answer counts in "bad". Good answers are
-- counted per 100 ms of CLOCK_MONOTONIC (LuaJIT ffi), the clock Python's
-- time.monotonic() reads, so soak.py can line them up with its restarts.
-- done() prints one line:
--   SOAK_JSON {"requests":N,"bad":N,"connect":N,"read":N,"write":N,
--              "status":N,"timeout":N,"bad_ms":[...],"sample":"...",
--              "buckets":{"BUCKET_START_MS":COUNT,...}}
-- bad_ms: CLOCK_MONOTONIC ms of the first 20 bad answers; sample: the first.
-- connect/read/write/timeout are wrk's socket errors, status its count of
-- non-2xx/3xx answers; wrk never sends a request twice.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } soak_timespec_t;
int clock_gettime(int clk_id, soak_timespec_t *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("soak_timespec_t")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) * 1000 + math.floor(tonumber(ts.tv_nsec) / 1000000)
end

-- Main state: the threads, so that done() can collect their counts.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Thread state: read back by done() through thread:get().
bad, sample, bad_ms, buckets = 0, "", {}, {}
local expect

function init(args)
   local method, size = args[1] or "GET", tonumber(args[2] or "0")
   wrk.method = method
   if size > 0 then
      local unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
      local body = string.rep(unit, math.floor(size / #unit) + 1):sub(1, size)
      wrk.body = body
      wrk.headers["Content-Type"] = "application/octet-stream"
      if args[3] == "1" then
         expect = body
      end
   end
end

function response(status, headers, body)
   local t = now_ms()
   if status == 200 and (expect == nil or body == expect) then
      local k = t - t % 100
      buckets[k] = (buckets[k] or 0) + 1
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
      'SOAK_JSON {"requests":%d,"bad":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"bad_ms":[%s],"sample":%s,"buckets":{%s}}\n',
      summary.requests, nbad, e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(times, ","), json_string(first), table.concat(parts, ",")))
end
