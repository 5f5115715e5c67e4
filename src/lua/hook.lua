-- hook: a webhook's status update, its message id claimed with it
-- (ngx_http_fanbase_txn_hook).
--
-- KEYS[1] T
-- ARGV[1] msg_id          the webhook's message id, for deduplication
-- ARGV[2] expires_in_ms   how long the message id is kept
-- ARGV[3] id              the edge's transaction id or Fanbase's queue id
-- ARGV[4] status          1..5
-- ARGV[5] event_json      rendered, "" none
-- ARGV[6] max_events      for a record this update creates
-- ARGV[7] create          1: an unknown id makes a record (without payload)
-- ARGV[8] notify          1: a notice for the site on the change
-- ARGV[9] retain_ms       how long a terminal transaction is kept
--
-- {0, id, version}   applied (or created); id: the edge's transaction id
-- {1}                a duplicate: the message id was seen
-- {2}                stale: the status does not move forward
-- {4}                no such transaction: the message id stays claimed
--                    (hook_release gives it back if nothing applies it)

local msg, id, status, event = ARGV[1], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local create, notify = tonumber(ARGV[7]), tonumber(ARGV[8])
local retain = tonumber(ARGV[9])

if redis.call('EXISTS', key_h(msg)) == 1 then
    return { DONE }
end

-- by the edge's id, else by Fanbase's queue id
local found = materialize(id)
if not found then
    local by_queue = redis.call('GET', key_q(id))
    if by_queue and materialize(by_queue) then
        id = by_queue
        found = true
    end
end

redis.call('SET', key_h(msg), '1', 'NX', 'PX',
           int(math.max(tonumber(ARGV[2]), 1)))

local now = now_ms()

if not found then
    if create ~= 1 then
        return { ABORT }
    end

    -- a transaction the edge did not accept: nothing to deliver, not
    -- scheduled; its status is set below
    redis.call('DEL', key_e(id))
    redis.call('HSET', key_t(id), 'st', int(PENDING), 'v', '0',
               'cr', int(now), 'up', int(now), 'cl', '0', 'sent', '0',
               'att', '0', 'me', int(tonumber(ARGV[6])), 'acc', '0')
else
    local st = num(redis.call('HGET', key_t(id), 'st'))
    if not advances(st, status) then
        return { DECLINED }
    end
end

redis.call('HSET', key_t(id), 'st', int(status))

local r = redis.call('HMGET', key_t(id), 'me', 'acc', 'pl', 'q', 'rt')
if event ~= '' then
    add_event(id, event, num(r[1]), num(r[2]))
end

local v = changed(id, now)
if notify == 1 then
    notice(id, now)
end

if terminal(status) then
    txn_terminal(id, retain)
elseif not r[3] and not r[4] and r[5] then
    -- only webhooks made it: nothing would ever end it (unowned_locked)
    redis.call('ZREM', key_due(r[5]), id)
end

publish(id, v)

return { OK, id, v }
