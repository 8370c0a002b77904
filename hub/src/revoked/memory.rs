//! Token invalidations of a single node, in memory; entries past their `expire_at` are
//! dropped as the map is touched.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Revoked, RevokedError};
use crate::auth::token::now_unix as now;

/// user → (issued before, expire at).
#[derive(Default)]
pub struct MemoryRevoked {
    lines: Mutex<HashMap<String, (i64, i64)>>,
}

#[async_trait]
impl Revoked for MemoryRevoked {
    async fn invalidate(
        &self,
        user: &str,
        issued_before: i64,
        expire_at: i64,
    ) -> Result<(), RevokedError> {
        let now = now();
        let mut lines = self.lines.lock();
        lines.retain(|_, (_, until)| *until > now);
        let line = lines
            .entry(user.to_owned())
            .or_insert((issued_before, expire_at));
        line.0 = line.0.max(issued_before);
        line.1 = line.1.max(expire_at);
        Ok(())
    }

    async fn issued_before(&self, user: &str) -> Result<Option<i64>, RevokedError> {
        let now = now();
        Ok(self
            .lines
            .lock()
            .get(user)
            .filter(|(_, until)| *until > now)
            .map(|(line, _)| *line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_line_only_moves_forward_and_expires() {
        let r = MemoryRevoked::default();
        assert_eq!(r.issued_before("u").await.unwrap(), None);
        let far = now() + 3600;
        r.invalidate("u", 100, far).await.unwrap();
        r.invalidate("u", 50, far).await.unwrap();
        assert_eq!(r.issued_before("u").await.unwrap(), Some(100));
        assert_eq!(r.issued_before("other").await.unwrap(), None);
        r.invalidate("gone", 100, now() - 1).await.unwrap();
        assert_eq!(r.issued_before("gone").await.unwrap(), None);
    }
}
