//! A worker process: opens its share of the connections at its share of the connect rate,
//! reports progress, and on the coordinator's word drains, reports and closes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use crate::conn::{self, Shared};
use crate::ipc::{Command, Report, WorkerPlan, WorkerResult};
use crate::stats;

const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Writes reports to stdout, one line each.
#[derive(Clone)]
struct Out(Arc<AsyncMutex<tokio::io::Stdout>>);

impl Out {
    async fn send(&self, report: &Report) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(report)?;
        line.push(b'\n');
        let mut out = self.0.lock().await;
        out.write_all(&line).await?;
        out.flush().await?;
        Ok(())
    }
}

/// The worker's entry point: `chorus-loadtest worker`, plan and commands on stdin.
pub async fn main() -> anyhow::Result<()> {
    let limit = crate::fdlimit::raise();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines.next_line().await?.context("no plan on stdin")?;
    let plan: WorkerPlan = serde_json::from_str(&first).context("bad worker plan")?;
    let n = plan.assignment.len();
    if n > crate::fdlimit::connections_per_process(limit) {
        bail!("{n} connections exceed this process's open-file limit of {limit}");
    }
    let rate = plan.connect_rate.max(1.0);
    let shared = Arc::new(Shared::new(plan));
    let out = Out(Arc::new(AsyncMutex::new(tokio::io::stdout())));

    let mut tasks = tokio::task::JoinSet::new();
    let opener = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for local in 0..n {
                let due = start + Duration::from_secs_f64(local as f64 / rate);
                tokio::time::sleep_until(due).await;
                set.spawn(conn::run(shared.clone(), local));
            }
            set
        })
    };
    let progress = {
        let (shared, out) = (shared.clone(), out.clone());
        tokio::spawn(async move {
            let mut ready_sent = false;
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let p = shared.stats.progress();
                let _ = out.send(&Report::Progress(p)).await;
                // Every connection has either subscribed or failed.
                if !ready_sent && (p.connected + p.connect_errors) as usize == n {
                    ready_sent = true;
                    let _ = out.send(&Report::Ready(p)).await;
                }
            }
        })
    };
    if let Ok(set) = opener.await {
        tasks = set;
    }

    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Command>(&line).context("bad command")? {
            Command::Drain {
                published,
                timeout_ms,
            } => {
                let want = expected(&shared, &published);
                drain(&shared, want, Duration::from_millis(timeout_ms)).await;
                let result = result(&shared, &published, want);
                out.send(&Report::Result(Box::new(result))).await?;
            }
            Command::Close => break,
        }
    }
    // Connections that end from here on were closed by us, not by the server.
    let _ = shared.stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    progress.abort();
    Ok(())
}

fn expected(shared: &Shared, published: &[u64]) -> u64 {
    // Only connections that subscribed can be expected to receive.
    shared
        .plan
        .assignment
        .iter()
        .zip(&shared.trackers)
        .filter(|(_, t)| t.lock().subscribed)
        .map(|(&c, _)| published.get(c as usize).copied().unwrap_or(0))
        .sum()
}

/// Waits until `want` deliveries have arrived, or nothing arrived for `quiet`.
async fn drain(shared: &Shared, want: u64, quiet: Duration) {
    let mut last = shared.stats.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let got = shared.stats.delivered.load(Ordering::Relaxed);
        if got >= want || last_change.elapsed() >= quiet {
            return;
        }
        if got != last {
            last = got;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn result(shared: &Shared, published: &[u64], expected: u64) -> WorkerResult {
    let (mut lost, mut duplicated, mut reordered) = (0, 0, 0);
    for (&c, tracker) in shared.plan.assignment.iter().zip(&shared.trackers) {
        let t = tracker.lock();
        if !t.subscribed {
            continue;
        }
        lost += t.lost(published.get(c as usize).copied().unwrap_or(0));
        duplicated += t.duplicated;
        reordered += t.reordered;
    }
    let snap = shared.stats.take();
    let progress = shared.stats.progress();
    WorkerResult {
        connected: progress.connected,
        connect_errors: snap.connect_errors,
        connect_latency_us: stats::encode(&snap.connect),
        latency_us: stats::encode(&snap.latency),
        expected,
        delivered: progress.delivered,
        lost,
        duplicated,
        reordered,
        protocol_errors: shared.garbled.load(Ordering::Relaxed),
        bytes_received: shared.bytes_received.load(Ordering::Relaxed),
        unexpected_disconnects: snap.disconnects,
        first_delivery_us: snap.first_delivery_us,
        last_delivery_us: snap.last_delivery_us,
        series: snap.series,
    }
}
