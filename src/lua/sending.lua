-- sending: the claimed job's POST may leave from now on
-- (ngx_http_fanbase_txn_sending): a worker that dies from here on leaves
-- doubt, which "sent" records.
--
-- KEYS[1] T
-- ARGV[1] id
-- ARGV[2] claim    the claim number claim answered
--
-- {0}   sent is 1
-- {2}   the claim was taken over (or ended): nothing may be sent

local id, claim = ARGV[1], tonumber(ARGV[2])

local r = redis.call('HMGET', key_t(id), 'cl', 'ow', 'st')
if not r[1] or num(r[1]) ~= claim or not r[2] or terminal(num(r[3])) then
    return { DECLINED }
end

redis.call('HSET', key_t(id), 'sent', '1')

return { OK }
