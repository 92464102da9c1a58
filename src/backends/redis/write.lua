-- polyrouter: one batch of record writes, all or nothing.
--
-- KEYS[i]           the record key of op i (`{prefix}:{table}:{key}`), i = 1..n
-- KEYS[n + 1]       the route's outbox stream, only when it has an outbox
-- ARGV[5(i-1) + 1]  'p' (put) or 'd' (delete)
-- ARGV[5(i-1) + 2]  the precondition: 'n' (none), 'a' (absent), 'e' (exists)
--                   or the expected version in decimal
-- ARGV[5(i-1) + 3]  put: the encoded record (compact JSON); delete: ''
-- ARGV[5(i-1) + 4]  put: the TTL in milliseconds, '' for none; delete: ''
-- ARGV[5(i-1) + 5]  the op's change event (JSON; its version is the
--                   stream entry's `v`), '' without an outbox
-- ARGV[5n + 1]      how long a tombstone is kept, in milliseconds ('0': none)
--
-- A record is a hash: v = version, d = data. A deleted record leaves a
-- tombstone: the hash with only v (its last version + 1), expiring after
-- the retention; it is absent to reads and preconditions, and the next
-- put of the key continues from its version.
--
-- Every precondition is checked first, against the state as the batch
-- evolves (a put then a put_if on the same key sees the first put); the
-- first that fails returns {0, i, actual version or -1} with nothing
-- written. Then every write is applied and {1, outcome_1, ..., outcome_n}
-- is returned: the new version for a put, 1/0 (existed) for a delete.
-- Each put, and each delete of a live record, also appends its event to
-- the outbox stream (XADD, fields v = version, e = event), in this same
-- script run. A key of another type makes HMGET (or XLEN, for the
-- outbox) fail in the check phase, before anything is written.
local n = (#ARGV - 1) / 5
local keep = tonumber(ARGV[5 * n + 1]) or 0
local outbox = KEYS[n + 1]
if outbox then redis.call('XLEN', outbox) end
-- state[k] = {live version or false, version a put continues from}
local state = {}
local out = {1}
local tomb = {}
for i = 1, n do
  local k = KEYS[i]
  local st = state[k]
  if st == nil then
    local h = redis.call('HMGET', k, 'v', 'd')
    local v = 0
    if h[1] then v = tonumber(h[1]) end
    if h[2] then st = {v, v} else st = {false, v} end
  end
  local cur = st[1]
  local b = 5 * (i - 1)
  local p = ARGV[b + 2]
  local ok
  if p == 'n' then
    ok = true
  elseif p == 'a' then
    ok = (cur == false)
  elseif p == 'e' then
    ok = (cur ~= false)
  else
    ok = (cur ~= false and cur == tonumber(p))
  end
  if not ok then
    if cur == false then cur = -1 end
    return {0, i, cur}
  end
  if ARGV[b + 1] == 'p' then
    local nv = st[2] + 1
    state[k] = {nv, nv}
    out[i + 1] = nv
  elseif cur == false then
    out[i + 1] = 0
    tomb[i] = false
    state[k] = st
  else
    out[i + 1] = 1
    tomb[i] = cur + 1
    if keep > 0 then state[k] = {false, cur + 1} else state[k] = {false, 0} end
  end
end
for i = 1, n do
  local k = KEYS[i]
  local b = 5 * (i - 1)
  local version = false
  if ARGV[b + 1] == 'p' then
    version = string.format('%d', out[i + 1])
    redis.call('HSET', k, 'v', version, 'd', ARGV[b + 3])
    local ttl = ARGV[b + 4]
    if ttl == '' then
      redis.call('PERSIST', k)
    else
      redis.call('PEXPIRE', k, ttl)
    end
  elseif tomb[i] then
    version = string.format('%d', tomb[i])
    if keep > 0 then
      redis.call('HDEL', k, 'd')
      redis.call('HSET', k, 'v', version)
      redis.call('PEXPIRE', k, keep)
    else
      redis.call('DEL', k)
    end
  end
  if version and outbox and ARGV[b + 5] ~= '' then
    redis.call('XADD', outbox, '*', 'v', version, 'e', ARGV[b + 5])
  end
end
return out
