-- wrk script: one Fanbase queue submission per request (bench/run.pl).
-- Only wrk's globals are set (no request() function), so wrk builds the
-- request once and keeps its fast path.
wrk.method = "POST"
wrk.body   = '{"action":"ticket-create","data":{"event":"bench-2026","sector":"A","seat":"A1","buyer":{"name":"Bench","cpf":null}}}'
wrk.headers["Content-Type"] = "application/json"
