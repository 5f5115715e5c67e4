-- get: a transaction as the edge renders it (ngx_http_fanbase_txn_get):
-- the C side writes the head and the implied accepted event itself.
--
-- KEYS[1] T
-- ARGV[1] id
--
-- {0, status, version, created_ms, updated_ms, accepted 0/1,
--  event_json_1, event_json_2, ...}    events oldest first; the implied
--                                      accepted event (rendered from
--                                      created_ms) comes before them
--                                      while accepted is 1
-- {2}                                  no such transaction in the scope

local id = ARGV[1]
local r = redis.call('HMGET', key_t(id), 'st', 'v', 'cr', 'up', 'acc')
if not r[1] then
    -- as create wrote it, untouched since: read as it is, not rewritten
    local rec = record(id)
    if rec == nil then
        return { DECLINED }
    end
    return { OK, PENDING, 1, tonumber(rec.cr), tonumber(rec.cr), 1 }
end

local out = { OK, num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]) }
for _, ev in ipairs(redis.call('LRANGE', key_e(id), 0, -1)) do
    out[#out + 1] = ev
end
return out
