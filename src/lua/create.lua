-- create: new transactions, each with its Idempotency-Key claimed with it
-- (ngx_http_fanbase_txn_create), all the accepts of one location that a
-- worker gathered over a turn of its event loop (ngx_http_fanbase_redis_
-- batch.c): one script run, one TIME, one MULTI/EXEC in the AOF for all of
-- them.  Each is one string (the prelude's record()), written by one MSET,
-- and one member of its route's due zset, added by one ZADD.
--
-- KEYS[1] T
-- ARGV[1]  target_hex          where and as whom they go, 64 hex digits
-- ARGV[2]  route_hex           its first 32 hex digits: the breaker's route
-- ARGV[3]  deliver_horizon_ms
-- ARGV[4]  track_horizon_ms
-- ARGV[5]  max_events
-- ARGV[6]  idem_window_ms      how long a key is kept
-- then five for each transaction, in the order they were accepted:
--   id          the new transaction's id (a random UUID of the edge)
--   payload     what to deliver
--   idem_key    the Idempotency-Key, "" none
--   digest_hex  MD5 of the payload, 32 hex digits ("" without a key)
--   request_id  the accepting request's id, "" none
--
-- one answer for each, in order:
-- {0, created_ms}   created, due now
-- {1, first_id}     a repeat: the key was used with the same body (by an
--                   earlier one of this batch too)
-- {2}               the key was used with another body

local target, route = ARGV[1], ARGV[2]
local now = now_ms()
local created = int(now)
local window = int(math.max(tonumber(ARGV[6]), 1))

-- what every record of this batch starts with
local head = created .. ' ' .. int(now + tonumber(ARGV[3])) .. ' '
             .. int(now + tonumber(ARGV[4])) .. ' '
             .. int(tonumber(ARGV[5])) .. ' ' .. route .. ' ' .. target
             .. ' '

local out, records, due = {}, {}, {}

for i = 7, #ARGV, 5 do
    local id, idem = ARGV[i], ARGV[i + 2]
    local answer

    if idem ~= '' then
        local k = redis.call('GET', key_k(idem))
        if k then
            local first_digest, first_id = string.match(k, '^(%S+) (.*)$')
            if first_digest == ARGV[i + 3] then
                answer = { DONE, first_id }
            else
                answer = { DECLINED }
            end
        else
            redis.call('SET', key_k(idem), ARGV[i + 3] .. ' ' .. id, 'NX',
                       'PX', window)
        end
    end

    if answer == nil then
        records[#records + 1] = key_r(id)
        records[#records + 1] = head .. ARGV[i + 4] .. '\n' .. ARGV[i + 1]
        due[#due + 1] = created
        due[#due + 1] = id
        answer = { OK, now }
    end

    out[#out + 1] = answer
end

if #records > 0 then
    redis.call('MSET', unpack(records))
    redis.call('ZADD', key_due(route), unpack(due))
    redis.call('SADD', KEY_ROUTES, route)
end

-- no change message: no host can hold a copy of them yet, and a message
-- per accept would cost every worker of every host a wake-up

return out
