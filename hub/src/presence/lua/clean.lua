-- Removes a channel's expired presence entries (and, with ARGV[2], one client), keeping
-- the per-user counts true, then answers a query.
--
-- KEYS[1] data hash  KEYS[2] expire zset  KEYS[3] users hash
-- ARGV[1] now (ms)  ARGV[2] client id to remove or ""  ARGV[3] "all", "stats" or "none"
local data, exp, users = KEYS[1], KEYS[2], KEYS[3]
local gone = redis.call('zrangebyscore', exp, '-inf', ARGV[1])
if ARGV[2] ~= '' then gone[#gone + 1] = ARGV[2] end
for _, client in ipairs(gone) do
  local info = redis.call('hget', data, client)
  if info then
    redis.call('hdel', data, client)
    local user = cjson.decode(info)['user']
    if redis.call('hincrby', users, user, -1) <= 0 then redis.call('hdel', users, user) end
  end
  redis.call('zrem', exp, client)
end
if ARGV[3] == 'all' then return redis.call('hgetall', data) end
if ARGV[3] == 'stats' then return {redis.call('hlen', data), redis.call('hlen', users)} end
return 0
