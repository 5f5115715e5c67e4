-- notice_claim: the earliest due notice, claimed for "lease" ms
-- (ngx_http_fanbase_notice_claim).
--
-- KEYS[1] T
-- ARGV[1] lease_ms
--
-- {0, nid, body, request_id, created_ms, attempts, claim}
--      body: the transaction's JSON at the change (what is signed and
--      sent); claim: the fence for notice_finish
-- {2, next_ms}  none due: ms until one is (-1: none at all)

local lease = tonumber(ARGV[1])
local now = now_ms()

while true do
    local head = redis.call('ZRANGE', KEY_NOTICES, 0, 0, 'WITHSCORES')
    if #head == 0 then
        return { DECLINED, -1 }
    end

    local nid, due = head[1], tonumber(head[2])
    if due > now then
        return { DECLINED, due - now }
    end

    local r = redis.call('HMGET', key_n(nid), 'b', 'rid', 'cr', 'att')
    if r[1] then
        redis.call('ZADD', KEY_NOTICES, int(now + lease), nid)
        local cl = redis.call('HINCRBY', key_n(nid), 'cl', 1)
        redis.call('HSET', key_n(nid), 'ow', '1')
        return { OK, nid, r[1], r[2] or '', num(r[3]), num(r[4]), cl }
    end

    -- its record is gone: so is the notice
    redis.call('ZREM', KEY_NOTICES, nid)
end
