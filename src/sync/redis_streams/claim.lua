-- Claims, for this consumer, a group's deliveries that are due again:
-- first those negatively acknowledged whose delay is over, then those
-- left unacknowledged longer than ack_wait (XAUTOCLAIM). An entry still
-- inside its nack delay is given back untouched if XAUTOCLAIM took it.
--
-- KEYS: stream, delayed (sorted set: entry id -> due time in ms)
-- ARGV: group, consumer, ack_wait_ms, count, cursor
-- Returns { next_cursor, { {id, payload, deliveries}, ... } }.

local stream, delayed = KEYS[1], KEYS[2]
local group, consumer = ARGV[1], ARGV[2]
local ack_wait, count, cursor = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claimed = {}

local function payload(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then return fields[i + 1] end
  end
  return ''
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', delayed, id)
  -- Nothing comes back when the entry was acknowledged meanwhile.
  for _, e in ipairs(redis.call('XCLAIM', stream, group, consumer, 0, id)) do
    if e and e[2] then table.insert(claimed, e) end
  end
end

if #claimed < count then
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, ack_wait, cursor,
    'COUNT', count - #claimed)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    local due = redis.call('ZSCORE', delayed, e[1])
    if due and tonumber(due) > now then
      -- Inside its nack delay: undo the claim's delivery count.
      local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
      redis.call('XCLAIM', stream, group, consumer, 0, e[1],
        'RETRYCOUNT', math.max(p[1][4] - 1, 0), 'JUSTID')
    elseif e[2] then
      table.insert(claimed, e)
    end
  end
end

local out = {}
for _, e in ipairs(claimed) do
  local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
  table.insert(out, { e[1], payload(e[2]), p[1][4] })
end
return { cursor, out }
