-- The prelude of every script of the Redis engine: src/lua/embed.pl
-- puts it before each one (EVALSHA scripts cannot include each other).
-- It mirrors the helpers of the embedded engine (ngx_http_fanbase_txn.c)
-- on the Redis keys of the design (issue 15).  Every script gets
-- KEYS[1] = T, the scope's hash tag "{PREFIX:SCOPEHEX}", and makes the
-- other key names from it: all of them are in one slot.
--
-- Answers: arrays whose first element is 0 OK, 1 DONE (a repeat or a
-- duplicate), 2 DECLINED, 3 BUSY, 4 ABORT.  Numbers go out as integers,
-- ids, payloads and JSON as bulk strings.

local T = KEYS[1]
local PREFIX, SCOPE = string.match(T, '^{(.*):([0-9a-f]+)}$')
if PREFIX == nil then
    return redis.error_reply('fanbase: KEYS[1] is not a scope tag: ' .. T)
end

local OK, DONE, DECLINED, BUSY, ABORT = 0, 1, 2, 3, 4

local PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED = 1, 2, 3, 4, 5
local STATUS_NAME = { 'pending', 'processing', 'completed', 'failed',
                      'cancelled' }

-- A parked transaction (its route's breaker is open) waits in its route's
-- due zset with the score created - PARKED: below every due time, in the
-- order of acceptance, so that when the breaker closes the parked ones
-- are due at once and first, in order.  Scores >= 0 are due times.
local PARKED = 1e15

-- Redis' clock, never a host's: ms since the epoch
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- an integer as Redis and C read it (tostring() would say 1.7e+12)
local function int(n)
    return string.format('%d', n)
end

local function key_t(id) return T .. ':t:' .. id end
local function key_r(id) return T .. ':r:' .. id end
local function key_e(id) return T .. ':e:' .. id end
local function key_due(route) return T .. ':due:' .. route end
local function key_b(route) return T .. ':b:' .. route end
local function key_k(k) return T .. ':k:' .. k end
local function key_h(msg) return T .. ':h:' .. msg end
local function key_q(qid) return T .. ':q:' .. qid end
local function key_n(nid) return T .. ':n:' .. nid end
local KEY_ROUTES = T .. ':routes'
local KEY_NOTICES = T .. ':n'
local KEY_CLAIMS = T .. ':c'
local CHANNEL = PREFIX .. ':changes'

local function terminal(st) return st >= COMPLETED end

-- A transaction as create wrote it: one string, key_r(id),
-- "created deliver_by track_by max_events route target request_id\n"
-- then the payload: a pending transaction nobody has touched yet, whose
-- other fields are create's (version 1, updated = created, no claim, not
-- sent, no attempt, the accepted event implied).  One string is what lets
-- a batch of accepts be one MSET (create.lua); the first script that
-- changes the transaction turns it into the hash key_t(id) first.
local function record(id)
    local rec = redis.call('GET', key_r(id))
    if not rec then
        return nil
    end
    local cr, db, tb, me, rt, tg, rid, pl = string.match(rec,
        '^(%d+) (%d+) (%d+) (%d+) (%x+) (%x+) ([^\n]*)\n(.*)$')
    return { cr = cr, db = db, tb = tb, me = me, rt = rt, tg = tg,
             rid = rid, pl = pl }
end

-- the transaction as a hash from here on: true when it exists
local function materialize(id)
    local r = record(id)
    if r == nil then
        return redis.call('EXISTS', key_t(id)) == 1
    end
    redis.call('HSET', key_t(id),
               'st', int(PENDING), 'v', '1', 'cr', r.cr, 'up', r.cr,
               'db', r.db, 'tb', r.tb, 'rt', r.rt, 'tg', r.tg, 'pl', r.pl,
               'cl', '0', 'sent', '0', 'att', '0', 'me', r.me, 'acc', '1')
    if r.rid ~= '' then
        redis.call('HSET', key_t(id), 'rid', r.rid)
    end
    redis.call('DEL', key_r(id))
    return true
end

-- fanbase_status_advances(): forward only, a terminal status never changes
local function advances(from, to)
    local rank_from = math.min(from, COMPLETED)
    local rank_to = math.min(to, COMPLETED)
    return not terminal(from) and rank_to > rank_from
end

-- a number field of a hash (absent: 0)
local function num(v)
    if v == false or v == nil or v == '' then
        return 0
    end
    return tonumber(v)
end

-- ngx_http_fanbase_time_iso(): YYYY-MM-DDTHH:MM:SS.mmmZ, UTC (days to a
-- civil date: H. Hinnant's algorithm; the sandbox has no os.date)
local function iso(ms)
    local days = math.floor(ms / 86400000)
    local rest = ms - days * 86400000
    local z = days + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460)
                            + math.floor(doe / 36524)
                            - math.floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + math.floor(yoe / 4)
                       - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = (mp < 10) and (mp + 3) or (mp - 9)
    if m <= 2 then
        y = y + 1
    end
    local sec = math.floor(rest / 1000)
    return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
                         math.floor(sec / 3600), math.floor(sec / 60) % 60,
                         sec % 60, rest % 1000)
end

-- ngx_http_fanbase_txn_accepted(): the implied first event
local function accepted_event(created)
    return '{"event":"transition","message":"accepted by the edge",'
           .. '"data":{},"status":"pending","created_at":"'
           .. iso(created) .. '"}'
end

-- ngx_http_fanbase_txn_json(): the downstream shape, byte for byte
local function txn_json(id, st, cr, up, acc)
    local parts = {}
    if acc == 1 then
        parts[1] = accepted_event(cr)
    end
    for _, ev in ipairs(redis.call('LRANGE', key_e(id), 0, -1)) do
        parts[#parts + 1] = ev
    end
    local code = string.upper(string.sub(id, 1, 8))
    return '{"created_at":"' .. iso(cr) .. '","updated_at":"' .. iso(up)
           .. '","id":"' .. id .. '","code":"' .. code
           .. '","operation":"create",'
           .. '"trigger_endpoint":"api/v1/integration/queue","status":"'
           .. (STATUS_NAME[st] or '') .. '","events":['
           .. table.concat(parts, ',') .. ']}'
end

-- ngx_http_fanbase_txn_add_event_locked(): the newest max_events are kept,
-- the implied accepted event counts and goes first
local function add_event(id, event, me, acc)
    local n = redis.call('LLEN', key_e(id)) + acc
    local cap = math.max(me, 1)
    while n >= cap do
        n = n - 1
        if acc == 1 then
            acc = 0
            redis.call('HSET', key_t(id), 'acc', '0')
        else
            redis.call('LPOP', key_e(id))
        end
    end
    redis.call('RPUSH', key_e(id), event)
    return acc
end

-- ngx_http_fanbase_txn_changed(): a new version, and the long polls told
local function changed(id, now)
    local v = redis.call('HINCRBY', key_t(id), 'v', 1)
    redis.call('HSET', key_t(id), 'up', int(now))
    return v
end

local function publish(id, v)
    redis.call('PUBLISH', CHANNEL, SCOPE .. ' ' .. id .. ' ' .. int(v))
end

-- ngx_http_fanbase_txn_notice_locked(): the transaction as it is now, due
-- now; its id is the same for every attempt and another for every status
local function notice(id, now)
    local r = redis.call('HMGET', key_t(id), 'st', 'cr', 'up', 'acc', 'rid')
    local st = num(r[1])
    local nid = 'msg_' .. id .. '_' .. (STATUS_NAME[st] or '')
    local body = txn_json(id, st, num(r[2]), num(r[3]), num(r[4]))
    redis.call('DEL', key_n(nid))
    redis.call('HSET', key_n(nid), 'b', body, 'rid', r[5] or '',
               'cr', int(now), 'att', '0', 'cl', '0')
    redis.call('ZADD', KEY_NOTICES, int(now), nid)
    return nid
end

-- ngx_http_fanbase_txn_terminal_locked(): out of the schedule, its payload,
-- request id and claim gone, kept for "retain" ms
local function txn_terminal(id, retain)
    local r = redis.call('HMGET', key_t(id), 'rt', 'q')
    if r[1] then
        redis.call('ZREM', key_due(r[1]), id)
    end
    redis.call('HDEL', key_t(id), 'pl', 'rid', 'ow')
    retain = math.max(retain, 1)
    redis.call('PEXPIRE', key_t(id), int(retain))
    redis.call('PEXPIRE', key_e(id), int(retain))
    if r[2] and r[2] ~= '' then
        redis.call('PEXPIRE', key_q(r[2]), int(retain))
    end
end

-- a transaction parked in its route's order of acceptance
local function park(route, id, cr)
    redis.call('ZADD', key_due(route), int(cr - PARKED), id)
end
