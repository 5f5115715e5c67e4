-- finish: the end of a claim, the transaction's new state
-- (ngx_http_fanbase_txn_finish and txn_breaker_end_locked).
--
-- KEYS[1] T
-- ARGV[1]  id
-- ARGV[2]  claim       the claim number claim answered
-- ARGV[3]  status      1..5, 0: unchanged
-- ARGV[4]  queue_id    delivered as, "" none
-- ARGV[5]  event_json  rendered, "" none
-- ARGV[6]  retry_ms    not terminal: due again after this
-- ARGV[7]  wait_ms     down: Fanbase asked for this pause (Retry-After)
-- ARGV[8]  flags       1 delivered, 2 not_sent (provably never sent),
--                      4 attempt (counts for the backoff), 8 down (Fanbase
--                      or its token endpoint did not answer: the route's
--                      breaker opens), 16 answered (Fanbase answered: the
--                      breaker closes)
-- ARGV[9]  notify      1: a notice for the site when the status moves
-- ARGV[10] retain_ms   how long a terminal transaction is kept
-- ARGV[11] max_events  used only if the record has none (it has: "me")
--
-- {0, pause_ms, failed_probes, waiting}
--      pause_ms: the breaker opened, or a probe failed: the next probe in
--      that many ms (0: no such change); failed_probes, waiting: the
--      breaker closed after that many failed probes, with that many parked
--      transactions now due first (-1, 0: it did not close)
-- {2}  the claim was taken over (or ended): nothing changed

local id, claim, status = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local queue_id, event = ARGV[4], ARGV[5]
local retry, wait = tonumber(ARGV[6]), tonumber(ARGV[7])
local flags = tonumber(ARGV[8])
local notify, retain = tonumber(ARGV[9]), tonumber(ARGV[10])

local function flag(bit)
    return math.floor(flags / bit) % 2 == 1
end

local delivered, not_sent, attempt = flag(1), flag(2), flag(4)
local down, answered = flag(8), flag(16)

local r = redis.call('HMGET', key_t(id), 'cl', 'ow', 'st', 'pl', 'q', 'me',
                     'acc', 'rt', 'cr')
if not r[1] or num(r[1]) ~= claim or not r[2] then
    return { DECLINED }
end

local now = now_ms()
local st = num(r[3])
local route, cr = r[8], num(r[9])
local me = r[6] and num(r[6]) or tonumber(ARGV[11])
local moved, is_changed = false, false

redis.call('HDEL', key_t(id), 'ow')

if not_sent then
    redis.call('HSET', key_t(id), 'sent', '0')
end

if attempt then
    redis.call('HINCRBY', key_t(id), 'att', 1)
end

if delivered and (r[4] or r[5]) and queue_id ~= '' then
    -- the queue id takes the payload's place; webhooks may name it so
    redis.call('HDEL', key_t(id), 'pl')
    redis.call('HSET', key_t(id), 'q', queue_id, 'att', '0', 'sent', '0')
    if not r[5] then
        redis.call('SET', key_q(queue_id), id)
    end
end

if status ~= 0 and advances(st, status) then
    redis.call('HSET', key_t(id), 'st', int(status))
    st = status
    moved, is_changed = true, true
end

if event ~= '' then
    add_event(id, event, me, num(r[7]))
    is_changed = true
end

local v
if is_changed then
    v = changed(id, now)
end

if moved and notify == 1 then
    notice(id, now)
end

if terminal(st) then
    txn_terminal(id, retain)
elseif route then
    redis.call('ZADD', key_due(route), int(now + retry), id)
end

if v then
    publish(id, v)
end

-- the breaker of its route (txn_breaker_end_locked)

if not route then
    return { OK, 0, -1, 0 }
end

local bkey = key_b(route)
local b = redis.call('HMGET', bkey, 'f', 'probe')
local f = num(b[1])
local probe = (b[2] == id)

if probe then
    redis.call('HDEL', bkey, 'probe', 'probe_until')
end

if down and not terminal(st) then
    local pause = 0
    -- a job that was out when the breaker opened does not count
    if f == 0 or probe then
        f = f + 1
        if f < 6 then
            pause = 1000 * 2 ^ (f - 1)
        else
            pause = 30000
        end
        pause = math.max(pause, wait)
        redis.call('HSET', bkey, 'f', int(f), 'until', int(now + pause))
    end
    park(route, id, cr)
    return { OK, pause, -1, 0 }
end

if not answered or f == 0 then
    -- a job that ended on its own proves nothing; a probe that learned
    -- nothing stays the next probe, after its pause
    if probe and f > 0 and not terminal(st) then
        redis.call('HSET', bkey, 'until', int(now + math.max(retry, 100)))
        park(route, id, cr)
    end
    return { OK, 0, -1, 0 }
end

-- Fanbase answered: the breaker closes; the parked ones (scores below
-- every due time, in the order of acceptance) are due at once and first
local waiting = redis.call('ZCOUNT', key_due(route), '-inf', '(0')
redis.call('DEL', bkey)

return { OK, 0, f - 1, waiting }
