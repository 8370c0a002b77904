-- Adds or refreshes clients' presence in channels; an entry lives until its expiry unless
-- refreshed, so the entries of a node that died without saying so disappear by themselves.
--
-- ARGV[1] now (ms)  ARGV[2] expiry (ms)  ARGV[3] key TTL seconds  ARGV[4] key prefix
-- then triples: channel, client id, ClientInfo JSON (with "user")
-- Keys per channel: <prefix>.presence.data.<ch> hash client -> info,
-- .expire.<ch> zset client -> expiry, .users.<ch> hash user -> live client count.
local prefix = ARGV[4]
for i = 5, #ARGV, 3 do
  local ch, client, info = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local data = prefix .. '.presence.data.' .. ch
  local exp = prefix .. '.presence.expire.' .. ch
  local users = prefix .. '.presence.users.' .. ch
  if redis.call('hset', data, client, info) == 1 then
    redis.call('hincrby', users, cjson.decode(info)['user'], 1)
  end
  redis.call('zadd', exp, ARGV[2], client)
  redis.call('expire', data, ARGV[3])
  redis.call('expire', exp, ARGV[3])
  redis.call('expire', users, ARGV[3])
end
return 0
