-- Appends events to their entity streams, each once per de-duplication
-- window, then trims the streams (when max_len is set) without ever
-- removing an entry a consumer group has not read and acknowledged.
--
-- KEYS: stream_1, dedup_1, stream_2, dedup_2, ... (one pair per event)
-- ARGV: window_ms, max_len (0: no trimming), payload_1, payload_2, ...
-- Returns the number of events appended (the others were duplicates).

local window = ARGV[1]
local max_len = tonumber(ARGV[2])

-- Stream ids are "ms-seq"; compares two of them.
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

local function id_after(id)
  local m, s = string.match(id, '^(%d+)-(%d+)$')
  return m .. '-' .. string.format('%d', tonumber(s) + 1)
end

-- The oldest entry some group still needs (unread, or read and not
-- acknowledged); nil when the stream has no group.
local function oldest_needed(key)
  local needed = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    local need = id_after(f['last-delivered-id'])
    if f['pending'] > 0 then
      local summary = redis.call('XPENDING', key, f['name'])
      if summary[2] and id_less(summary[2], need) then need = summary[2] end
    end
    if needed == nil or id_less(need, needed) then needed = need end
  end
  return needed
end

-- Removes the oldest entries past max_len (at most 1000 per call), but
-- none that a group still needs.
local function trim(key)
  local len = redis.call('XLEN', key)
  if len <= max_len then return end
  local excess = math.min(len - max_len, 1000)
  local head = redis.call('XRANGE', key, '-', '+', 'COUNT', excess + 1)
  local cut = head[#head][1]
  local needed = oldest_needed(key)
  if needed ~= nil and id_less(needed, cut) then cut = needed end
  redis.call('XTRIM', key, 'MINID', cut)
end

local added = 0
local touched = {}
for i = 1, #KEYS, 2 do
  local stream, dedup = KEYS[i], KEYS[i + 1]
  if redis.call('EXISTS', dedup) == 0 then
    -- Append first: if it fails, no de-duplication key hides the retry.
    redis.call('XADD', stream, '*', 'e', ARGV[2 + (i + 1) / 2])
    redis.call('SET', dedup, '1', 'PX', window)
    added = added + 1
    touched[stream] = true
  end
end
if max_len > 0 then
  for stream in pairs(touched) do trim(stream) end
end
return added
