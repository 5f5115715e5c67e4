-- wrk script: the submission of bench/post.lua, BENCH_N of them in all
-- (each of wrk's threads stops after its share; bench/backlog_curve.pl
-- fills a zone to a level with it).
wrk.method = "POST"
wrk.body   = '{"action":"ticket-create","data":{"event":"bench-2026","sector":"A","seat":"A1","buyer":{"name":"Bench","cpf":null}}}'
wrk.headers["Content-Type"] = "application/json"

local threads = tonumber(os.getenv("BENCH_THREADS_N") or "2")
local share = math.ceil(tonumber(os.getenv("BENCH_N") or "0") / threads)
local done = 0

function response(status, headers, body)
   done = done + 1
   if done >= share then
      wrk.thread:stop()
   end
end
