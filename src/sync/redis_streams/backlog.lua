-- Entries of one stream a group has not acknowledged: not yet delivered
-- (XINFO GROUPS lag, counted by hand when Redis cannot tell) plus
-- delivered and pending. A group that does not exist yet would start at
-- the oldest entry: all of them.
--
-- KEYS: stream
-- ARGV: group

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    local lag = f['lag']
    if not lag then
      lag = #redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+')
    end
    return lag + f['pending']
  end
end
return redis.call('XLEN', KEYS[1])
