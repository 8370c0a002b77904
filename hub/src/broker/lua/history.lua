-- Reads a channel's position, what the stream knows of itself, and publications after a given
-- offset, in one atomic step. Whether that offset can be continued is not decided here: the
-- broker decides from these facts with `recovery::continue_from` (hub/src/recovery.rs), the
-- one rule both engines share.
--
-- KEYS[1] stream  KEYS[2] meta
-- ARGV[1] a fresh epoch for a stream never seen   ARGV[2] meta TTL seconds
-- ARGV[3] declared source epoch or "" (see publish.lua, also for meta field r)
-- ARGV[4] offset to read after ("" or 0 for the start)
-- ARGV[5] limit (-1 for all)  ARGV[6] "1" for newest first
-- Returns {top, epoch, gap, sourced, entries...}: gap is the offset at or below which
-- publications may be gone (all of them once the stream itself expired), sourced "1" when a
-- source's reader positions the stream; entries are the stream's [id, [field, value]] pairs.
local stream, meta = KEYS[1], KEYS[2]
local run = string.sub(string.match(redis.call('info', 'server'), 'run_id:(%x+)'), 1, 10)
local epoch = redis.call('hget', meta, 'e')
local top = tonumber(redis.call('hget', meta, 's') or '0')
local lane = redis.call('hget', meta, 'l')
if epoch and redis.call('hget', meta, 'r') ~= run then
  -- Another Redis process set this epoch: its latest publications may be gone.
  if ARGV[3] ~= '' then
    epoch = nil -- the next record restarts a sourced stream (publish.lua)
  else
    epoch = ARGV[1]
    redis.call('hset', meta, 'e', epoch, 'g', top, 'r', run)
  end
end
if not epoch then
  if ARGV[3] ~= '' then
    -- A sourced stream before this process's first record: its source's epoch, not yet
    -- stored, so that record still starts the stream at the point its reader began.
    epoch = ARGV[3] .. '-' .. run
  else
    epoch = ARGV[1]
    redis.call('hset', meta, 'e', epoch, 's', 0, 'g', 0, 'r', run)
    redis.call('expire', meta, ARGV[2])
  end
end
local gap = tonumber(redis.call('hget', meta, 'g') or '0')
if redis.call('exists', stream) == 0 then gap = top end
local sourced = '0'
if lane then sourced = '1' end
local out = {tostring(top), epoch, tostring(gap), sourced}
local limit = tonumber(ARGV[5])
if limit == 0 then return out end
local after = 0
if ARGV[4] ~= '' then after = tonumber(ARGV[4]) end
local low = '(' .. after .. '-1'
local cmd, first, last = 'xrange', low, '+'
if ARGV[6] == '1' then cmd, first, last = 'xrevrange', '+', low end
local entries
if limit > 0 then
  entries = redis.call(cmd, stream, first, last, 'COUNT', limit)
else
  entries = redis.call(cmd, stream, first, last)
end
for _, e in ipairs(entries) do out[#out + 1] = e end
return out
