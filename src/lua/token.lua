-- token: the Fanbase token of a credential set, shared by every host
-- (ngx_http_fanbase_token_redis.c), with a cluster-wide fetch lease, so
-- that one host fetches for all.  The token is a secret: no answer of
-- this script but "get"'s carries it, and no error names it.
--
-- T:tok        hash: tk the token, exp its end (Redis ms), life its
--              lifetime (ms); PX until its end
-- T:tok:lease  string: the owner ("host pid") of the fetch under way; PX
--
-- KEYS[1] T
-- ARGV[1] op: get, put, release or drop
--
-- get: ARGV[2] the token this host has (or had: expired, rejected) or "";
--      ARGV[3] ms it can still use it (0: none); ARGV[4] lease ms;
--      ARGV[5] owner
-- {0, token, left_ms, life_ms}  a token other than ARGV[2] that is still
--                               good (usable longer than ARGV[3] and 1 s):
--                               use it
-- {2}                           none: the lease is the owner's, fetch
-- {3}                           another owner fetches: look again shortly
--
-- put: ARGV[2] token, ARGV[3] lifetime ms, ARGV[4] owner: kept until its
--      end (unless Redis holds one that ends later), the owner's lease
--      released -> {0}, or {1} when the one held ends later
-- release: ARGV[2] owner: the owner's lease released (a failed fetch) -> {0}
-- drop: ARGV[2] token: removed if it is the one held (Fanbase rejected
--       it) -> {0}, else {2}

local KEY_TOK = T .. ':tok'
local KEY_LEASE = T .. ':tok:lease'

-- as the edge reckons a token's end (ngx_http_fanbase_token_done)
local SKEW_MAX = 30000

local function release(owner)
    if redis.call('GET', KEY_LEASE) == owner then
        redis.call('DEL', KEY_LEASE)
    end
end

local op = ARGV[1]
local now = now_ms()

if op == 'get' then
    local have, have_left = ARGV[2], tonumber(ARGV[3])
    local lease, owner = tonumber(ARGV[4]), ARGV[5]

    local r = redis.call('HMGET', KEY_TOK, 'tk', 'exp', 'life')
    if r[1] and r[1] ~= have then
        local left, life = num(r[2]) - now, num(r[3])
        local usable = left - math.min(math.floor(life / 10), SKEW_MAX)
        if usable > math.max(have_left, 1000) then
            return { OK, r[1], left, life }
        end
    end

    local held = redis.call('GET', KEY_LEASE)
    if held and held ~= owner then
        return { BUSY }
    end

    redis.call('SET', KEY_LEASE, owner, 'PX', lease)
    return { DECLINED }
end

if op == 'put' then
    local token, life, owner = ARGV[2], tonumber(ARGV[3]), ARGV[4]
    release(owner)

    local exp = num(redis.call('HGET', KEY_TOK, 'exp'))
    if exp > now + life then
        return { DONE }
    end

    redis.call('HSET', KEY_TOK, 'tk', token, 'exp', int(now + life),
               'life', int(life))
    redis.call('PEXPIRE', KEY_TOK, int(life))
    return { OK }
end

if op == 'release' then
    release(ARGV[2])
    return { OK }
end

if op == 'drop' then
    if redis.call('HGET', KEY_TOK, 'tk') == ARGV[2] then
        redis.call('DEL', KEY_TOK)
        return { OK }
    end
    return { DECLINED }
end

return redis.error_reply('fanbase: token: unknown operation')
