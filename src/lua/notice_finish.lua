-- notice_finish: the end of a notice's claim
-- (ngx_http_fanbase_notice_finish): dropped (sent, or past its
-- horizon), or due again after the delay, one attempt more if one failed.
--
-- KEYS[1] T
-- ARGV[1] nid
-- ARGV[2] claim      the claim number notice_claim answered
-- ARGV[3] drop       1: the notice goes
-- ARGV[4] delay_ms   not dropped: due again after this
-- ARGV[5] failed     1: an attempt failed
--
-- {0}   done
-- {2}   the claim was taken over (or ended): nothing changed

local nid, claim = ARGV[1], tonumber(ARGV[2])
local drop, delay, failed = tonumber(ARGV[3]), tonumber(ARGV[4]),
                            tonumber(ARGV[5])

local r = redis.call('HMGET', key_n(nid), 'cl', 'ow')
if not r[1] or num(r[1]) ~= claim or not r[2] then
    return { DECLINED }
end

if drop == 1 then
    redis.call('DEL', key_n(nid))
    redis.call('ZREM', KEY_NOTICES, nid)
    return { OK }
end

redis.call('HDEL', key_n(nid), 'ow')
if failed == 1 then
    redis.call('HINCRBY', key_n(nid), 'att', 1)
end
redis.call('ZADD', KEY_NOTICES, int(now_ms() + delay), nid)

return { OK }
