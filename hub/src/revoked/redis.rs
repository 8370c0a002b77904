//! Token invalidations shared by every node: one key per user, `<prefix>.revoked.<user>`,
//! holding the line and expiring with it, raised (never lowered) by a script so that two
//! invalidations at once keep the later line.

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use super::{Revoked, RevokedError};
use crate::redis_link::RedisLink;

/// KEYS[1] the user's key; ARGV[1] the line, ARGV[2] when the key expires (unix seconds), or
/// `never`; a later expiry wins.
const RAISE: &str = r"
local held = tonumber(redis.call('get', KEYS[1]) or '0')
local line = math.max(held, tonumber(ARGV[1]))
redis.call('set', KEYS[1], line, 'KEEPTTL')
if ARGV[2] == 'never' then
  redis.call('persist', KEYS[1])
else
  redis.call('expireat', KEYS[1], ARGV[2], 'GT')
  redis.call('expireat', KEYS[1], ARGV[2], 'NX')
end
return line
";

pub struct RedisRevoked {
    link: Arc<RedisLink>,
    raise: Script,
}

impl RedisRevoked {
    pub fn new(link: Arc<RedisLink>) -> Self {
        RedisRevoked {
            link,
            raise: Script::from_lua(RAISE),
        }
    }

    fn key(&self, user: &str) -> String {
        self.link.key("revoked", user)
    }
}

fn unavailable(e: fred::error::Error) -> RevokedError {
    RevokedError(e.to_string())
}

#[async_trait]
impl Revoked for RedisRevoked {
    async fn invalidate(
        &self,
        user: &str,
        issued_before: i64,
        expire_at: i64,
    ) -> Result<(), RevokedError> {
        let key = self.key(user);
        self.raise
            .evalsha_with_reload::<i64, _, _>(
                self.link.shard(&key).pool.next(),
                vec![key.clone()],
                vec![
                    issued_before.to_string(),
                    match expire_at {
                        i64::MAX => "never".to_owned(),
                        t => t.to_string(),
                    },
                ],
            )
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn issued_before(&self, user: &str) -> Result<Option<i64>, RevokedError> {
        let key = self.key(user);
        self.link
            .shard(&key)
            .pool
            .next()
            .get::<Option<i64>, _>(&key)
            .await
            .map_err(unavailable)
    }
}
