-- wrk script for scripts/bench-pages.sh: GET one page with a signed-in session cookie, each
-- request from its own client address (X-Forwarded-For, believed because medport runs with
-- MEDPORT_TRUSTED_PROXIES=127.0.0.1, as behind a load balancer). Without that, all the
-- load would come from 127.0.0.1 and the per-address limit (300 requests/minute) would turn
-- it into 429s after the first second.
--
-- Environment: MEDPORT_BENCH_COOKIE (`name=value` of the session cookie, required),
-- MEDPORT_BENCH_PATH (default /uploads). `/healthz`, the reference, is asked for without
-- the cookie: the same middleware, but no session to read from the database.
--
-- Each thread counts the status codes it saw; `done` prints one machine-readable line:
--   BENCH-PAGES requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N
--     mean_us=X err_connect=N err_read=N err_write=N err_timeout=N err_status=N
--     non200=N status_200=N [status_303=N ...]

local cookie = os.getenv("MEDPORT_BENCH_COOKIE")
if cookie == nil or cookie == "" then
   error("MEDPORT_BENCH_COOKIE is not set")
end
local path = os.getenv("MEDPORT_BENCH_PATH") or "/uploads"

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
end

-- Per thread (each wrk thread has its own Lua state). `statuses` is a global so that `done`
-- can read it through thread:get.
local n = 0
local base
statuses = {}

function init(args)
   statuses = {}
   -- 10.<thread>.y.z: 65536 addresses per thread, used round-robin. At the default 300
   -- requests/minute (burst 300) per address, that holds far more than this machine can
   -- serve. Thread addresses start at 10.1; the sign-ins use 10.250 and up.
   base = "10." .. tostring(id) .. "."
end

function request()
   n = n + 1
   local i = n % 65536
   local headers = {
      ["X-Forwarded-For"] = base .. tostring(math.floor(i / 256)) .. "." .. tostring(i % 256),
      ["Accept"] = "text/html",
   }
   if path ~= "/healthz" then
      headers["Cookie"] = cookie
   end
   return wrk.format("GET", path, headers)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if s ~= nil then
         for code, count in pairs(s) do
            counts[code] = (counts[code] or 0) + count
         end
      end
   end
   local non200 = 0
   local codes = {}
   for code, count in pairs(counts) do
      if code ~= 200 then
         non200 = non200 + count
      end
      table.insert(codes, code)
   end
   table.sort(codes)
   local e = summary.errors
   local line = string.format(
      "BENCH-PAGES requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d non200=%d",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
      math.floor(latency:percentile(99)), math.floor(latency.max), latency.mean, e.connect, e.read, e.write, e.timeout, e.status, non200)
   for _, code in ipairs(codes) do
      line = line .. string.format(" status_%d=%d", code, counts[code])
   end
   io.write(line .. "\n")
end
