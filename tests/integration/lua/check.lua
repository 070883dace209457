-- check.lua -- a wrk script that checks every answer and reports in JSON.
--
--   wrk -s check.lua URL -- METHOD BODY_BYTES EXPECT PROGRESS_DIR
--
-- METHOD       GET or POST
-- BODY_BYTES   POST: send a body of this many bytes (a fixed pattern); the
--              answer must be that body, byte for byte (the inflight
--              example's /echo). 0 for none.
-- EXPECT       GET: the exact body a 200 must carry ("-" for any body).
-- PROGRESS_DIR each thread writes its count of good answers to a file here
--              every 64 answers, so a test can see that the load flows.
--
-- Every answer that is not a 200 with the expected body counts in "bad"
-- (the first one is kept as a sample). done() prints one line:
--   WRK_JSON {"requests":N,"bad":N,"connect":N,"read":N,"write":N,
--             "status":N,"timeout":N,"sample":"..."}
-- wrk itself counts socket errors (connect/read/write/timeout); a request
-- on a kept-alive connection that the server closes without an answer is a
-- read error: wrk never sends a request twice.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local expect, progress_path
good, bad, sample = 0, 0, ""

function init(args)
   local method = args[1] or "GET"
   local size = tonumber(args[2] or "0")
   wrk.method = method
   if size > 0 then
      local unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
      local body = string.rep(unit, math.floor(size / #unit) + 1):sub(1, size)
      wrk.body = body
      wrk.headers["Content-Type"] = "application/octet-stream"
      expect = body
   elseif args[3] and args[3] ~= "-" then
      expect = args[3]
   end
   if args[4] then
      progress_path = args[4] .. "/thread-" .. id
   end
end

function response(status, headers, body)
   if status == 200 and (expect == nil or body == expect) then
      good = good + 1
      if progress_path and good % 64 == 0 then
         local f = io.open(progress_path, "w")
         if f then
            f:write(good)
            f:close()
         end
      end
   else
      bad = bad + 1
      if sample == "" then
         sample = "status " .. status .. " body " .. string.sub(body or "", 1, 120)
      end
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

function done(summary, latency, requests)
   local b, first = 0, ""
   for _, t in ipairs(threads) do
      b = b + t:get("bad")
      local s = t:get("sample")
      if first == "" and s ~= "" then
         first = s
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"bad":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"sample":%s}\n',
      summary.requests, b, e.connect, e.read, e.write, e.status, e.timeout, json_string(first)))
end
