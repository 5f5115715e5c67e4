-- claim: the next due transaction of the scope, claimed for "lease" ms
-- (ngx_http_fanbase_txn_claim with txn_probe_locked): first the probe of
-- a route whose breaker is open and whose pause is over (the oldest of
-- its parked transactions, one probe at a time), then the earliest due
-- transaction over the routes whose breaker is closed.  A due
-- transaction of an open breaker's route is parked (in the order of
-- acceptance) instead; a record without payload nor queue id (a webhook's)
-- leaves the schedule.
--
-- KEYS[1] T
-- ARGV[1] lease_ms
-- ARGV[2] owner      "host pid", for the log of whoever takes it over
--
-- {0, id, kind, data, request_id, target_hex, claim, attempts, sent,
--  deadline_ms, previous_owner}
--      kind 1 deliver (data: the payload), 2 track (data: the queue id);
--      claim: the fence for sending and finish; deadline: the deliver or
--      track horizon; previous_owner: "" or the owner whose claim ran out
-- {2, next_ms}  none due: ms until one may be (0: look again at once,
--               -1: none at all)

local lease, owner = tonumber(ARGV[1]), ARGV[2]
local now = now_ms()
local next_ms = -1
local LOOK = 64     -- parked or skipped per call, as the zone's engine

local function sooner(ms)
    if ms < 0 then
        ms = 0
    end
    if next_ms < 0 or ms < next_ms then
        next_ms = ms
    end
end

-- true when the record can be claimed (a payload or a queue id); else it
-- leaves the schedule
local function claimable(route, id)
    materialize(id)
    local r = redis.call('HMGET', key_t(id), 'pl', 'q')
    if r[1] or r[2] then
        return true
    end
    redis.call('ZREM', key_due(route), id)
    return false
end

local function take(route, id)
    local r = redis.call('HMGET', key_t(id), 'pl', 'q', 'rid', 'tg', 'att',
                         'sent', 'db', 'tb', 'ow')
    local kind, data, deadline
    if r[2] then
        kind, data, deadline = 2, r[2], num(r[8])
    else
        kind, data, deadline = 1, r[1], num(r[7])
    end
    redis.call('ZADD', key_due(route), int(now + lease), id)
    local cl = redis.call('INCR', KEY_CLAIMS)
    redis.call('HSET', key_t(id), 'cl', int(cl), 'ow', owner)
    return { OK, id, kind, data, r[3] or '', r[4] or '', cl, num(r[5]),
             num(r[6]), deadline, r[9] or '' }
end

local routes = redis.call('SMEMBERS', KEY_ROUTES)
table.sort(routes)

local open = {}
local budget = LOOK

-- the routes whose breaker is open: park what is due, then a probe
for _, route in ipairs(routes) do
    local b = redis.call('HMGET', key_b(route), 'f', 'until', 'probe',
                         'probe_until')
    if num(b[1]) > 0 then
        open[route] = true

        local probing = b[3] and num(b[4]) > now
        if b[3] and not probing then
            -- the probe's claim ran out: its worker went away
            redis.call('HDEL', key_b(route), 'probe', 'probe_until')
        end

        local due = redis.call('ZRANGEBYSCORE', key_due(route), 0, now,
                               'LIMIT', 0, budget)
        for _, id in ipairs(due) do
            materialize(id)
            local cr = redis.call('HGET', key_t(id), 'cr')
            if cr then
                park(route, id, tonumber(cr))
            else
                redis.call('ZREM', key_due(route), id)
            end
        end
        budget = budget - #due
        if budget <= 0 then
            -- the rest at the next look
            return { DECLINED, 0 }
        end

        if not probing then
            if num(b[2]) <= now then
                while true do
                    local head = redis.call('ZRANGEBYSCORE', key_due(route),
                                            '-inf', '(0', 'LIMIT', 0, 1)
                    if #head == 0 then
                        break
                    end
                    if claimable(route, head[1]) then
                        redis.call('HSET', key_b(route), 'probe', head[1],
                                   'probe_until', int(now + lease))
                        return take(route, head[1])
                    end
                end
            elseif redis.call('ZCOUNT', key_due(route), '-inf', '(0')
                   > 0
            then
                sooner(num(b[2]) - now)
            end
        end

        -- what comes due later (the probe's lease among them) is parked
        -- then
        local later = redis.call('ZRANGEBYSCORE', key_due(route),
                                 '(' .. int(now), '+inf', 'WITHSCORES',
                                 'LIMIT', 0, 1)
        if #later > 0 then
            sooner(tonumber(later[2]) - now)
        end
    end
end

-- the earliest due over the routes whose breaker is closed
local best_route, best_id, best_score
for _, route in ipairs(routes) do
    if not open[route] then
        while true do
            local head = redis.call('ZRANGE', key_due(route), 0, 0,
                                    'WITHSCORES')
            if #head == 0 then
                -- nothing on this route any more
                redis.call('SREM', KEY_ROUTES, route)
                break
            end
            local score = tonumber(head[2])
            if score > now then
                if best_score == nil or score < best_score then
                    best_route, best_id, best_score = nil, nil, score
                end
                break
            end
            if claimable(route, head[1]) then
                if best_score == nil or score < best_score then
                    best_route, best_id, best_score = route, head[1], score
                end
                break
            end
            budget = budget - 1
            if budget <= 0 then
                return { DECLINED, 0 }
            end
        end
    end
end

if best_id then
    return take(best_route, best_id)
end

if best_score then
    sooner(best_score - now)
end

return { DECLINED, next_ms }
