-- wrk script: one signed webhook per request, every one a different
-- message (bench/run.pl, row "webhooks").
--
--   wrk ... -s webhook.lua URL -- FILE LENGTH COUNT
--
-- FILE holds the requests run.pl generated, each LENGTH bytes from its
-- first header on (the request line and Host are wrk's, prepended here),
-- COUNT for each wrk thread, one block after the other: thread N (from 0)
-- sends block N, in order, each request once.  It reads its block in
-- chunks as it goes, so that no thread loads anything before the
-- measurement (wrk starts its first thread while it still runs the
-- others' init).  A thread that comes to the end of its block starts it
-- again: repeats, which done() reports and run.pl counts as a failure.
-- done() prints, for each thread, how many requests it took (wrk asks
-- thread 0 for one more, never sent, when it starts) and how often it ran
-- out.

local threads, next_id = {}, 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   threads[#threads + 1] = thread
end

local CHUNK = 2048          -- requests read at once
local file, len, first, head
local buf, pos, left = "", 1, 0
taken, ran_out = 0, 0

function init(args)
   len, count = tonumber(args[2]), tonumber(args[3])
   file = assert(io.open(args[1], "rb"))
   first = id * count * len
   file:seek("set", first)
   left = count
   head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. "\r\n"
end

function request()
   if pos > #buf then
      if left == 0 then
         file:seek("set", first)
         left = count
         ran_out = ran_out + 1
      end
      local n = left < CHUNK and left or CHUNK
      buf = file:read(n * len)
      pos, left = 1, left - n
   end
   local r = head .. string.sub(buf, pos, pos + len - 1)
   pos = pos + len
   taken = taken + 1
   return r
end

function done(summary, latency, requests)
   for _, t in ipairs(threads) do
      io.write(string.format("webhooks: thread %d took %d of %d, ran out %d times\n",
                             t:get("id"), t:get("taken"), t:get("count"),
                             t:get("ran_out")))
   end
end
