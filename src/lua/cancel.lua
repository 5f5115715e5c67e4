-- cancel: DELETE of a transaction (ngx_http_fanbase_txn_cancel).
--
-- KEYS[1] T
-- ARGV[1] id
-- ARGV[2] event_json   the "cancelled at the edge" event, rendered
-- ARGV[3] notify       1: a notice for the site (fanbase_notify)
-- ARGV[4] retain_ms    how long the cancelled transaction is kept
--
-- {0}   cancelled, now or before
-- {2}   no such transaction in the scope
-- {3}   its delivery has begun (claimed, sent, delivered, or past pending)
-- {4}   it has ended otherwise (completed, failed)

local id, event = ARGV[1], ARGV[2]
local notify, retain = tonumber(ARGV[3]), tonumber(ARGV[4])

materialize(id)

local r = redis.call('HMGET', key_t(id), 'st', 'ow', 'q', 'sent', 'me',
                     'acc')
if not r[1] then
    return { DECLINED }
end

local st = num(r[1])
if st == CANCELLED then
    return { OK }
end
if terminal(st) then
    return { ABORT }
end
if r[2] or r[3] or num(r[4]) == 1 or st ~= PENDING then
    return { BUSY }
end

local now = now_ms()
redis.call('HSET', key_t(id), 'st', int(CANCELLED))
add_event(id, event, num(r[5]), num(r[6]))
local v = changed(id, now)
if notify == 1 then
    notice(id, now)
end
txn_terminal(id, retain)
publish(id, v)

return { OK }
