//! The open-files limit, and how many connections it leaves room for.

/// Descriptors kept back for listeners, logs, the API and outgoing connections.
pub const FD_RESERVE: u64 = 256;

/// What the hub may use after raising its soft limit.
#[derive(Debug, Clone, Copy)]
pub struct FdBudget {
    pub limit: u64,
    /// Sockets the listener accepts before closing new ones outright.
    pub sockets: usize,
    /// WebSocket connections served before refusing with the connection-limit code.
    pub connections: usize,
}

/// Raises the soft open-files limit to the hard limit and derives the budget.
pub fn raise_fd_limit() -> FdBudget {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    };
    budget(limit)
}

pub fn budget(limit: u64) -> FdBudget {
    let sockets = limit.saturating_sub(FD_RESERVE / 4).max(1);
    let connections = limit.saturating_sub(FD_RESERVE).max(1);
    FdBudget {
        limit,
        sockets: sockets as usize,
        connections: connections as usize,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn budget_leaves_a_reserve() {
        let b = super::budget(20_000);
        assert_eq!(b.connections, 19_744);
        assert!(b.sockets > b.connections && (b.sockets as u64) < 20_000);
    }
}
