-- polyrouter: one batch of record writes, all or nothing.
--
-- KEYS[i]           the record key of op i (`{prefix}:{table}:{key}`)
-- ARGV[4(i-1) + 1]  'p' (put) or 'd' (delete)
-- ARGV[4(i-1) + 2]  the precondition: 'n' (none), 'a' (absent), 'e' (exists)
--                   or the expected version in decimal
-- ARGV[4(i-1) + 3]  put: the encoded record (compact JSON); delete: ''
-- ARGV[4(i-1) + 4]  put: the TTL in milliseconds, '' for none; delete: ''
--
-- Every precondition is checked first, against the state as the batch
-- evolves (a put then a put_if on the same key sees the first put); the
-- first that fails returns {0, i, actual version or -1} with nothing
-- written. Then every write is applied and {1, outcome_1, ..., outcome_n}
-- is returned: the new version for a put, 1/0 (existed) for a delete.
-- A record is a hash: v = version, d = data. A key of another type makes
-- HGET fail in the check phase, before anything is written.
local n = #KEYS
local state = {}
local out = {1}
for i = 1, n do
  local k = KEYS[i]
  local cur = state[k]
  if cur == nil then
    local v = redis.call('HGET', k, 'v')
    if v then cur = tonumber(v) else cur = false end
  end
  local b = 4 * (i - 1)
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
    if cur == false then cur = 0 end
    state[k] = cur + 1
    out[i + 1] = cur + 1
  else
    if cur == false then out[i + 1] = 0 else out[i + 1] = 1 end
    state[k] = false
  end
end
for i = 1, n do
  local k = KEYS[i]
  local b = 4 * (i - 1)
  if ARGV[b + 1] == 'p' then
    redis.call('HSET', k, 'v', string.format('%d', out[i + 1]), 'd', ARGV[b + 3])
    local ttl = ARGV[b + 4]
    if ttl == '' then
      redis.call('PERSIST', k)
    else
      redis.call('PEXPIRE', k, ttl)
    end
  else
    redis.call('DEL', k)
  end
end
return out
