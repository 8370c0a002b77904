//! Reads a server's resident memory and CPU time from `/proc/<pid>/stat`.

use std::time::Duration;

use serde::Serialize;

/// The servers' totals at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub at: f64,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Sums RSS and user+system CPU time over `pids`; `None` if none can be read.
pub fn sample(pids: &[i32], at: Duration) -> Option<Sample> {
    if pids.is_empty() {
        return None;
    }
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    let mut s = Sample {
        at: at.as_secs_f64(),
        ..Sample::default()
    };
    for &pid in pids {
        let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
        s.rss_bytes += stat.rss * page;
        s.cpu_seconds += (stat.utime + stat.stime) as f64 / ticks;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let s = sample(&[me], Duration::ZERO).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(sample(&[], Duration::ZERO).is_none());
    }
}
