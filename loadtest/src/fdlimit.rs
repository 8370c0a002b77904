//! The open-file limit decides how many sockets one process can hold.

/// Descriptors a worker keeps for itself: stdio, the runtime's epoll and eventfds, slack.
const RESERVED: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}

/// How many connections one process can hold under `limit` open files.
pub fn connections_per_process(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED))
        .unwrap_or(usize::MAX)
        .max(1)
}
