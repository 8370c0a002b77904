-- Reads a channel's position and, optionally, publications after a given offset.
--
-- KEYS[1] stream  KEYS[2] meta  KEYS[3] the engine's instance key
-- ARGV[1] a fresh epoch for a stream never seen   ARGV[2] meta TTL seconds
-- ARGV[3] declared source epoch or "" (see publish.lua)
-- ARGV[4] since offset or "" for none  ARGV[5] since epoch
-- ARGV[6] limit (-1 for all)  ARGV[7] "1" for newest first
-- Returns {top, epoch, status, entries...} with status "ok" or "unrecoverable"; entries
-- are the stream's [id, [field, value]] pairs.
local stream, meta, inst = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call('hget', meta, 'e')
local top = tonumber(redis.call('hget', meta, 's') or '0')
local lane = redis.call('hget', meta, 'l')
if not epoch then
  if ARGV[3] ~= '' then
    -- A sourced stream before its first record: its source's epoch, not yet stored, so
    -- the first record still starts the stream at the point its reader began.
    local instance = redis.call('get', inst)
    if not instance then
      instance = ARGV[1]
      redis.call('set', inst, instance)
    end
    epoch = ARGV[3] .. '-' .. instance
  else
    epoch = ARGV[1]
    redis.call('hset', meta, 'e', epoch, 's', 0, 'g', 0)
    redis.call('expire', meta, ARGV[2])
  end
end
local status = 'ok'
local after = 0
if ARGV[4] ~= '' then
  local since = tonumber(ARGV[4])
  local gap = tonumber(redis.call('hget', meta, 'g') or '0')
  if redis.call('exists', stream) == 0 then gap = top end
  if ARGV[5] ~= epoch then
    status = 'unrecoverable'
  elseif since > top then
    -- Ahead of this stream: only a sourced stream whose reader is behind its clients
    -- (records delivered by an earlier run, not re-read yet) can vouch nothing is missing.
    if not lane then status = 'unrecoverable' else top = since end
  elseif since < gap and since < top then
    status = 'unrecoverable'
  end
  after = since
  if status ~= 'ok' then return {tostring(top), epoch, status} end
end
local out = {tostring(top), epoch, status}
local limit = tonumber(ARGV[6])
if limit == 0 then return out end
local low = '(' .. after .. '-1'
local cmd, first, last = 'xrange', low, '+'
if ARGV[7] == '1' then cmd, first, last = 'xrevrange', '+', low end
local entries
if limit > 0 then
  entries = redis.call(cmd, stream, first, last, 'COUNT', limit)
else
  entries = redis.call(cmd, stream, first, last)
end
for _, e in ipairs(entries) do out[#out + 1] = e end
return out
