-- create: a new transaction, and its Idempotency-Key claimed with it
-- (ngx_http_fanbase_txn_create).
--
-- KEYS[1] T
-- ARGV[1]  id                  the new transaction's id
-- ARGV[2]  payload             what to deliver
-- ARGV[3]  idem_key            the Idempotency-Key, "" none
-- ARGV[4]  digest_hex          MD5 of the payload, 32 hex digits
-- ARGV[5]  request_id          the accepting request's id, "" none
-- ARGV[6]  target_hex          where and as whom it goes, 64 hex digits
-- ARGV[7]  route_hex           its first 32 hex digits: the breaker's route
-- ARGV[8]  deliver_horizon_ms
-- ARGV[9]  track_horizon_ms
-- ARGV[10] max_events
-- ARGV[11] idem_window_ms      how long the key is kept
-- ARGV[12] retain_ms           (unused: a new transaction is not terminal)
--
-- {0, created_ms}   created, due now
-- {1, first_id}     a repeat: the key was used with the same body
-- {2}               the key was used with another body

local id, payload, idem, digest, rid = ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                                       ARGV[5]
local target, route = ARGV[6], ARGV[7]
local now = now_ms()

if idem ~= '' then
    local k = redis.call('GET', key_k(idem))
    if k then
        local first_digest, first_id = string.match(k, '^(%S+) (.*)$')
        if first_digest == digest then
            return { DONE, first_id }
        end
        return { DECLINED }
    end
end

-- a new id (a random UUID of the edge): nothing to delete first
redis.call('HSET', key_t(id),
           'st', int(PENDING), 'v', '1', 'cr', int(now), 'up', int(now),
           'db', int(now + tonumber(ARGV[8])),
           'tb', int(now + tonumber(ARGV[9])),
           'rt', route, 'tg', target, 'pl', payload,
           'cl', '0', 'sent', '0', 'att', '0',
           'me', int(tonumber(ARGV[10])), 'acc', '1')
if rid ~= '' then
    redis.call('HSET', key_t(id), 'rid', rid)
end

redis.call('SADD', KEY_ROUTES, route)
redis.call('ZADD', key_due(route), int(now), id)

if idem ~= '' then
    redis.call('SET', key_k(idem), digest .. ' ' .. id, 'NX', 'PX',
               int(math.max(tonumber(ARGV[11]), 1)))
end

-- no change message: no host can hold a copy of it yet, and a message
-- per accept would cost every worker of every host a wake-up

return { OK, now }
