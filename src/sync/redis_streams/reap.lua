-- Removes ephemeral consumer groups: the one named in ARGV[2] (a member's
-- close), and every one whose liveness key expired (its member stopped
-- fetching). A group's entities are listed in the registry hash.
--
-- KEYS: registry ({prefix}::ephemeral: group -> comma-separated entities)
-- ARGV: prefix, group to remove now ('' for none)
-- Returns the number of groups removed.

local prefix, now = ARGV[1], ARGV[2]
local removed = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local group, entities = all[i], all[i + 1]
  local alive = prefix .. '::alive:' .. group
  if group == now or redis.call('EXISTS', alive) == 0 then
    for entity in string.gmatch(entities, '[^,]+') do
      local stream = prefix .. ':' .. entity
      if redis.call('EXISTS', stream) == 1 then
        -- The group may already be gone from this stream.
        pcall(redis.call, 'XGROUP', 'DESTROY', stream, group)
      end
      redis.call('DEL', stream .. ':delayed:' .. group)
    end
    redis.call('HDEL', KEYS[1], group)
    redis.call('DEL', alive)
    removed = removed + 1
  end
end
return removed
