-- polyrouter: one unconditional put, the common case of the write script
-- (write.lua) without its batch bookkeeping; the same effect.
--
-- KEYS[1]  the record key (`{prefix}:{table}:{key}`)
-- KEYS[2]  the route's outbox stream, only when it has an outbox
-- ARGV[1]  the encoded record (compact JSON)
-- ARGV[2]  the TTL in milliseconds, '' for none
-- ARGV[3]  the change event (JSON; its version is the stream entry's
--          `v`), '' without an outbox
--
-- The version continues from the live record's or the tombstone's (both
-- keep it in `v`), 1 for an absent or expired key: HINCRBY, which also
-- fails on a key of another type (or a `v` that is not an integer) before
-- anything is written, as XLEN does for an outbox that is not a stream.
-- Returns the new version.
local k = KEYS[1]
local outbox = KEYS[2]
if outbox then redis.call('XLEN', outbox) end
local v = redis.call('HINCRBY', k, 'v', 1)
redis.call('HSET', k, 'd', ARGV[1])
if ARGV[2] == '' then
  redis.call('PERSIST', k)
else
  redis.call('PEXPIRE', k, ARGV[2])
end
if outbox and ARGV[3] ~= '' then
  redis.call('XADD', outbox, '*', 'v', string.format('%d', v), 'e', ARGV[3])
end
return v
