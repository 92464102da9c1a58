-- polyrouter: versioned apply — changes stored at their source's version,
-- each only when newer than what the key holds (live or tombstone).
--
-- KEYS[i]           the record key of change i, i = 1..n
-- KEYS[n + 1]       the route's outbox stream, only when it has an outbox
-- ARGV[4(i-1) + 1]  the change's version, decimal
-- ARGV[4(i-1) + 2]  'p' (put) or 'd' (delete)
-- ARGV[4(i-1) + 3]  put: the encoded record (compact JSON); delete: ''
-- ARGV[4(i-1) + 4]  the change's event (JSON; its version is the stream
--                   entry's `v`), '' without an outbox
-- ARGV[4n + 1]      how long a tombstone is kept, in milliseconds ('0': none)
--
-- Every key's version is read first (a key of another type, or an outbox
-- that is not a stream, fails here, before anything is written). Then, in
-- order, a change newer than the key's version (as the changes before it
-- left it) is stored: a put as `v` = its version, `d` = its data, without
-- expiry; a delete as a tombstone at its version expiring after the
-- retention (no tombstones: the key goes). Applied changes append their
-- event to the outbox. Returns one value per change: -1 applied, else the
-- version the key holds (the change was stale).
local n = (#ARGV - 1) / 4
local keep = tonumber(ARGV[4 * n + 1]) or 0
local outbox = KEYS[n + 1]
if outbox then redis.call('XLEN', outbox) end
local state = {}
for i = 1, n do
  local k = KEYS[i]
  if state[k] == nil then
    state[k] = tonumber(redis.call('HGET', k, 'v') or '0') or 0
  end
end
local out = {}
for i = 1, n do
  local k = KEYS[i]
  local b = 4 * (i - 1)
  local version = ARGV[b + 1]
  local v = tonumber(version)
  if v <= state[k] then
    out[i] = state[k]
  else
    out[i] = -1
    if ARGV[b + 2] == 'p' then
      redis.call('HSET', k, 'v', version, 'd', ARGV[b + 3])
      redis.call('PERSIST', k)
      state[k] = v
    elseif keep > 0 then
      redis.call('HDEL', k, 'd')
      redis.call('HSET', k, 'v', version)
      redis.call('PEXPIRE', k, keep)
      state[k] = v
    else
      redis.call('DEL', k)
      state[k] = 0
    end
    if outbox and ARGV[b + 4] ~= '' then
      redis.call('XADD', outbox, '*', 'v', version, 'e', ARGV[b + 4])
    end
  end
end
return out
