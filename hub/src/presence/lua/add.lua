-- Adds or refreshes clients' presence in channels; an entry lives until its expiry unless
-- refreshed, so the entries of a node that died without saying so disappear by themselves.
--
-- KEYS: per entry, three keys: the channel's data hash (client -> info), expire zset
-- (client -> expiry) and users hash (user -> live client count). The caller groups entries
-- so that all keys of one call are on one shard (and, on a cluster, one slot).
-- ARGV[1] expiry (ms)  ARGV[2] key TTL seconds, then per entry: client id, ClientInfo JSON
for e = 0, #KEYS / 3 - 1 do
  local data, exp, users = KEYS[e * 3 + 1], KEYS[e * 3 + 2], KEYS[e * 3 + 3]
  local client, info = ARGV[e * 2 + 3], ARGV[e * 2 + 4]
  if redis.call('hset', data, client, info) == 1 then
    redis.call('hincrby', users, cjson.decode(info)['user'], 1)
  end
  redis.call('zadd', exp, ARGV[1], client)
  redis.call('expire', data, ARGV[2])
  redis.call('expire', exp, ARGV[2])
  redis.call('expire', users, ARGV[2])
end
return 0
