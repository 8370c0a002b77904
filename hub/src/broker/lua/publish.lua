-- Appends a publication to a channel's history and publishes it, atomically, so that no
-- node can see the history and the live message disagree.
--
-- KEYS[1] stream (Redis stream; entry id "<offset>-1", field d = publication JSON)
-- KEYS[2] meta hash: e = epoch, s = top offset, g = everything above it is held,
--         l = source lane (sourced streams only)
-- KEYS[3] broker-numbered: the idempotency key; sourced: the sorted set of the stream's
--         recent event keys (scored by offset); absent when the publication has no key (an
--         empty name would be a key of its own, on another cluster slot)
-- ARGV[1] publication JSON without offset      ARGV[2] history size
-- ARGV[3] history TTL seconds                  ARGV[4] meta TTL seconds
-- ARGV[5] a fresh epoch, used if the stream is new  ARGV[6] PUB/SUB channel
-- ARGV[7] idempotency window seconds           ARGV[8] "n" broker-numbered, "s" sourced
-- ARGV[9] source offset  ARGV[10] source epoch  ARGV[11] source lane
-- ARGV[12] source complete_after  ARGV[13] "1" deliver, "d" deliver as a delta, "0" history only
-- ARGV[14] sourced: the record's idempotency key  ARGV[15] sourced: how many keys to keep
-- ARGV[16] "s" to deliver with SPUBLISH (Redis Cluster's sharded PUB/SUB), else PUBLISH
--
-- Meta field r is the run id of the Redis process that set the epoch. A stream whose epoch
-- another process set (a replica promoted by a failover, possibly behind its master; a
-- restart) may have lost its latest publications, which subscribers may already hold: it
-- gets a new epoch, so every subscriber is told to recover and recovery says it cannot,
-- instead of offsets being handed out again for different publications.
-- Returns {offset, epoch, status} where status is "new", "dup" or "old".
local stream, meta, idem = KEYS[1], KEYS[2], KEYS[3] or ''
if idem ~= '' and ARGV[8] == 'n' then
  local held = redis.call('get', idem)
  if held then
    local sep = string.find(held, ':', 1, true)
    return {string.sub(held, 1, sep - 1), string.sub(held, sep + 1), 'dup'}
  end
end
-- This Redis process (run ids are 40 hex digits; 10 tell processes apart).
local run = string.sub(string.match(redis.call('info', 'server'), 'run_id:(%x+)'), 1, 10)
local epoch = redis.call('hget', meta, 'e')
local top = tonumber(redis.call('hget', meta, 's') or '0')
local owned = redis.call('hget', meta, 'r') == run
local offset, prev
if ARGV[8] == 's' then
  -- A sourced stream's epoch is its source's plus this Redis process: positions survive a
  -- hub restart, but not Redis losing data, which must tell clients they cannot recover.
  local src_epoch = ARGV[10] .. '-' .. run
  local lane = redis.call('hget', meta, 'l')
  local after = tonumber(ARGV[12])
  prev = top
  if not epoch or not owned or (not lane and epoch == src_epoch) then
    -- First record of this process's view: complete only above where reading began.
    epoch = src_epoch
    if after > top then top = after end
    redis.call('hset', meta, 'e', epoch, 's', top, 'g', top, 'l', ARGV[11], 'r', run)
    prev = 0
  elseif lane ~= ARGV[11] then
    -- The channel moved to another partition: its offsets mean nothing here. The epoch
    -- names the lane, so every node computes the same one and later records keep it.
    redis.call('del', stream)
    epoch = src_epoch .. '.' .. ARGV[11]
    top = after
    redis.call('hset', meta, 'e', epoch, 's', top, 'g', top, 'l', ARGV[11])
    prev = 0
  end
  offset = tonumber(ARGV[9])
  if offset <= top then
    return {tostring(offset), epoch, 'old'}
  end
  if idem ~= '' then
    -- The same event produced again at a later offset (a producer's retry after a crash):
    -- dropped however late, as long as it is among the stream's latest keys. The top stays,
    -- so the next record's predecessor is the last one delivered.
    local first = redis.call('zscore', idem, ARGV[14])
    if first then
      return {tostring(first), epoch, 'dup'}
    end
    redis.call('zadd', idem, offset, ARGV[14])
    local keep = tonumber(ARGV[15])
    if redis.call('zcard', idem) > keep then
      redis.call('zremrangebyrank', idem, 0, -(keep + 1))
    end
    redis.call('expire', idem, ARGV[4])
  end
  redis.call('hset', meta, 's', offset)
else
  if not epoch or not owned then
    epoch = ARGV[5]
    redis.call('hset', meta, 'e', epoch, 'g', top, 'r', run)
  end
  prev = top
  offset = redis.call('hincrby', meta, 's', 1)
end
redis.call('expire', meta, ARGV[4])
local size = tonumber(ARGV[2])
if size > 0 then
  redis.call('xadd', stream, offset .. '-1', 'd', ARGV[1])
  -- Trim by hand, remembering the highest offset let go: below it recovery has a gap.
  local excess = redis.call('xlen', stream) - size
  if excess > 0 then
    local gone = redis.call('xrange', stream, '-', '+', 'COUNT', excess)
    local ids = {}
    for i, entry in ipairs(gone) do ids[i] = entry[1] end
    redis.call('xdel', stream, unpack(ids))
    local last = gone[#gone][1]
    redis.call('hset', meta, 'g', string.sub(last, 1, string.find(last, '-', 1, true) - 1))
  end
  redis.call('expire', stream, ARGV[3])
else
  redis.call('hset', meta, 'g', offset)
end
if idem ~= '' and ARGV[8] == 'n' then
  redis.call('set', idem, offset .. ':' .. epoch, 'EX', ARGV[7])
end
if ARGV[13] ~= '0' then
  local kind = 'p'
  if ARGV[13] == 'd' then kind = 'd' end
  local cmd = 'publish'
  if ARGV[16] == 's' then cmd = 'spublish' end
  redis.call(cmd, ARGV[6], kind .. offset .. ':' .. prev .. ':' .. epoch .. ':' .. ARGV[1])
end
return {tostring(offset), epoch, 'new'}
