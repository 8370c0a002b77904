//! The coordinator: plans the run, spawns the workers, runs the phases, builds the report.
//!
//! Phases: connect (every worker reports ready) → settle (let the server's memory settle,
//! then sample it) → publish for the duration (idle: just hold) → drain (workers wait for
//! what is still in flight, then report) → close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cli::{Protocol, RunArgs, Scenario};
use crate::ipc::{Command, Progress, Report as WorkerReport, WorkerPlan, WorkerResult};
use crate::publisher::centrifugo::CentrifugoApi;
use crate::publisher::kafka::KafkaPublisher;
use crate::publisher::pusher::PusherApi;
use crate::publisher::Publisher;
use crate::report::Report;
use crate::sampler::{self, Sample};
use crate::schedule::{self, Schedule};
use crate::{fdlimit, plan};

/// Runs a whole scenario and writes the outputs it was asked for.
pub async fn run(scenario: Scenario, args: RunArgs) -> anyhow::Result<Report> {
    let kafka = match (&args.kafka_brokers, scenario) {
        (Some(brokers), Scenario::Broadcast | Scenario::Rooms) => Some(Arc::new(
            KafkaPublisher::new(brokers, &args.kafka_topic, args.kafka_linger_ms)?,
        )),
        _ => None,
    };
    let publisher = match &kafka {
        Some(k) => Some(k.clone() as Arc<dyn Publisher>),
        None => publisher(scenario, &args)?,
    };
    let (stop_floor, floor_stop) = tokio::sync::watch::channel(false);
    let floor = match (&args.kafka_brokers, args.kafka_floor && kafka.is_some()) {
        (Some(brokers), true) => Some(tokio::spawn(crate::floor::measure(
            brokers.clone(),
            args.kafka_topic.clone(),
            floor_stop,
        ))),
        _ => None,
    };
    let layout = plan::layout(scenario, &args);
    let n = args.connections;
    let workers = worker_count(n, args.workers)?;
    let clock = Clock::start();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = spawn_sampler(args.server_pids.clone(), clock, samples.clone());
    let baseline = sampler::sample(&args.server_pids, clock.elapsed());
    if !args.server_pids.is_empty() && baseline.is_none() {
        bail!("cannot read /proc for server pid(s) {:?}", args.server_pids);
    }

    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} {bar:30} {pos}/{len} connected {msg}")
            .expect("invariant: valid template"),
    );
    eprintln!(
        "{scenario:?}: {n} connections over {} url(s), {workers} worker process(es), {} channel(s)",
        args.urls.len(),
        layout.channels.len()
    );
    let mut fleet = Fleet::spawn(&args, &layout, workers).await?;
    fleet
        .wait(&bar, |f| f.ready.iter().all(|&r| r), "connecting")
        .await?;
    let connected = fleet.totals().connected;
    eprintln!(
        "connected {connected}/{n} in {:.1}s ({} failed)",
        clock.elapsed().as_secs_f64(),
        fleet.totals().connect_errors
    );

    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let mut loaded = sampler::sample(&args.server_pids, clock.elapsed());
    let sent = Arc::new(AtomicU64::new(0));
    let (outcome, cpu_before) = match (scenario, publisher) {
        (Scenario::Idle, _) | (_, None) => {
            fleet
                .hold(&bar, Duration::from_secs_f64(args.duration))
                .await?;
            // Memory at the end of the hold is the steady state of idle connections.
            loaded = sampler::sample(&args.server_pids, clock.elapsed()).or(loaded);
            (
                schedule::Outcome {
                    published: vec![0; layout.channels.len()],
                    ..Default::default()
                },
                None,
            )
        }
        (_, Some(publisher)) => {
            let cpu_before = sampler::sample(&args.server_pids, clock.elapsed());
            let schedule = Schedule {
                rate: args.publish_rate,
                duration: Duration::from_secs_f64(args.duration),
                max_messages: args.messages,
                lanes: args.publishers,
                payload_size: args.payload_size,
                seed: args.seed,
            };
            let channels = Arc::new(layout.channels.clone());
            let publishing =
                tokio::spawn(schedule::run(publisher, channels, schedule, sent.clone()));
            let outcome = fleet.publish(&bar, publishing, &sent).await?;
            (outcome, cpu_before)
        }
    };
    fleet
        .broadcast(&Command::Drain {
            published: outcome.published.clone(),
            timeout_ms: (args.drain_timeout * 1000.0) as u64,
        })
        .await?;
    fleet
        .wait(&bar, |f| f.results.iter().all(Option::is_some), "draining")
        .await?;
    let cpu_after = sampler::sample(&args.server_pids, clock.elapsed());
    stop_floor.send_replace(true);
    let floor = match floor {
        Some(task) => Some(task.await.context("floor consumer task")??),
        None => None,
    };
    if !args.server_pids.is_empty() && (loaded.is_none() || cpu_after.is_none()) {
        bail!(
            "server process {:?} could not be sampled during the run (did it exit?)",
            args.server_pids
        );
    }
    fleet.broadcast(&Command::Close).await?;
    let results: Vec<WorkerResult> = fleet.finish().await;
    bar.finish_and_clear();
    sampling.abort();

    let mut report = Report::build(crate::report::Inputs {
        scenario,
        args: &args,
        workers,
        channels: layout.channels.len(),
        results,
        outcome: &outcome,
        baseline,
        loaded,
        cpu_window: cpu_before.zip(cpu_after),
        samples: samples.lock().clone(),
        run_started_unix_us: clock.unix_us,
    })?;
    report.kafka_floor_latency_ms = floor.as_ref().map(crate::report::Percentiles::of);
    if let Some((failed, first)) = kafka.as_ref().map(|k| k.failures()) {
        report.publish_errors += failed;
        if report.publish_first_error.is_none() {
            report.publish_first_error = first;
        }
    }
    report.write_outputs(&args)?;
    eprintln!("{}", report.one_line());
    Ok(report)
}

fn publisher(scenario: Scenario, args: &RunArgs) -> anyhow::Result<Option<Arc<dyn Publisher>>> {
    if scenario == Scenario::Idle {
        return Ok(None);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.publishers.max(1) * 2)
        .build()?;
    let api = args
        .api_url
        .as_deref()
        .context("--api-url is required to publish")?;
    Ok(Some(match args.protocol {
        Protocol::Centrifugo | Protocol::CentrifugoProtobuf => Arc::new(CentrifugoApi::new(
            http,
            api,
            args.api_key
                .clone()
                .context("--api-key is required to publish")?,
        )),
        Protocol::Pusher => Arc::new(PusherApi::new(
            http,
            api,
            args.pusher_app_id
                .clone()
                .context("--pusher-app-id is required")?,
            args.pusher_key
                .clone()
                .context("--pusher-key is required")?,
            args.pusher_secret
                .clone()
                .context("--pusher-secret is required")?,
        )),
    }))
}

/// Workers needed for `n` connections; says plainly when one process cannot hold them.
fn worker_count(n: usize, asked: Option<usize>) -> anyhow::Result<usize> {
    let limit = fdlimit::raise();
    let per_process = fdlimit::connections_per_process(limit);
    let needed = n.div_ceil(per_process).max(1);
    match asked {
        Some(w) if w < needed => bail!(
            "{n} connections need at least {needed} worker processes: one process may hold \
             {per_process} under its open-file limit of {limit} (the hard limit; it cannot be raised)"
        ),
        Some(w) => Ok(w.clamp(1, n.max(1))),
        None => {
            if needed > 1 {
                eprintln!(
                    "{n} connections exceed one process's open-file limit of {limit}; \
                     spreading them over {needed} worker processes"
                );
            }
            Ok(needed)
        }
    }
}

/// Run time, both monotonic and as the Unix time it started.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    unix_us: u64,
}

impl Clock {
    fn start() -> Self {
        Self {
            start: Instant::now(),
            unix_us: crate::payload::now_micros(),
        }
    }
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

fn spawn_sampler(
    pids: Vec<i32>,
    clock: Clock,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            match sampler::sample(&pids, clock.elapsed()) {
                Some(s) => samples.lock().push(s),
                None => return,
            }
        }
    })
}

/// The worker processes and what they last said.
struct Fleet {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    rx: mpsc::UnboundedReceiver<(usize, Option<WorkerReport>)>,
    progress: Vec<Progress>,
    ready: Vec<bool>,
    results: Vec<Option<WorkerResult>>,
}

impl Fleet {
    async fn spawn(args: &RunArgs, layout: &plan::Layout, workers: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find own executable")?;
        let n = layout.assignment.len();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
            rx,
            progress: vec![Progress::default(); workers],
            ready: vec![false; workers],
            results: (0..workers).map(|_| None).collect(),
        };
        for w in 0..workers {
            let (from, to) = (n * w / workers, n * (w + 1) / workers);
            let plan = WorkerPlan {
                protocol: args.protocol,
                urls: args.urls.clone(),
                first_conn: from,
                channels: layout.channels.clone(),
                assignment: layout.assignment[from..to].to_vec(),
                connect_rate: args.connect_rate / workers as f64,
                connect_timeout_ms: (args.connect_timeout * 1000.0) as u64,
                hmac_secret: args.hmac_secret.clone(),
                pusher_key: args.pusher_key.clone(),
                source_ips: args.source_ips,
                delta: args.delta,
            };
            let mut child = tokio::process::Command::new(&exe)
                .args(["--threads", &args.worker_threads.to_string(), "worker"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker process")?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let mut line = serde_json::to_vec(&plan)?;
            line.push(b'\n');
            stdin.write_all(&line).await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<WorkerReport>(&line) {
                        Ok(r) => {
                            let _ = tx.send((w, Some(r)));
                        }
                        Err(e) => eprintln!("worker {w}: unreadable report: {e}"),
                    }
                }
                let _ = tx.send((w, None));
            });
            fleet.children.push(child);
            fleet.stdins.push(stdin);
        }
        Ok(fleet)
    }

    fn totals(&self) -> Progress {
        self.progress
            .iter()
            .fold(Progress::default(), |a, p| Progress {
                connected: a.connected + p.connected,
                connect_errors: a.connect_errors + p.connect_errors,
                delivered: a.delivered + p.delivered,
                disconnects: a.disconnects + p.disconnects,
            })
    }

    /// Handles one worker message; a worker that exits early is an error.
    async fn next(&mut self) -> anyhow::Result<()> {
        let (w, report) = self.rx.recv().await.context("all workers are gone")?;
        match report {
            Some(WorkerReport::Progress(p)) => self.progress[w] = p,
            Some(WorkerReport::Ready(p)) => {
                self.progress[w] = p;
                self.ready[w] = true;
            }
            Some(WorkerReport::Result(r)) => self.results[w] = Some(*r),
            None => {
                if self.results[w].is_none() {
                    bail!("worker {w} exited before reporting its result");
                }
            }
        }
        Ok(())
    }

    fn show(&self, bar: &ProgressBar, phase: &str) {
        let t = self.totals();
        bar.set_position(t.connected);
        bar.set_message(format!(
            "{phase}: {} delivered, {} connect errors, {} disconnects",
            t.delivered, t.connect_errors, t.disconnects
        ));
    }

    async fn wait(
        &mut self,
        bar: &ProgressBar,
        done: impl Fn(&Self) -> bool,
        phase: &str,
    ) -> anyhow::Result<()> {
        while !done(self) {
            self.next().await?;
            self.show(bar, phase);
        }
        Ok(())
    }

    async fn hold(&mut self, bar: &ProgressBar, time: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + time;
        while Instant::now() < until {
            if let Ok(r) = tokio::time::timeout_at(until, self.next()).await {
                r?;
                self.show(bar, "holding");
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        bar: &ProgressBar,
        mut publishing: tokio::task::JoinHandle<schedule::Outcome>,
        sent: &AtomicU64,
    ) -> anyhow::Result<schedule::Outcome> {
        loop {
            tokio::select! {
                outcome = &mut publishing => return outcome.context("publisher task failed"),
                r = self.next() => {
                    r?;
                    self.show(bar, &format!("publishing ({} sent)", sent.load(Ordering::Relaxed)));
                }
            }
        }
    }

    async fn broadcast(&mut self, cmd: &Command) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        for stdin in &mut self.stdins {
            stdin.write_all(&line).await?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Waits for the workers to exit after `Close` and hands over their results.
    async fn finish(mut self) -> Vec<WorkerResult> {
        drop(std::mem::take(&mut self.stdins));
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.results.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_connections_than_one_process_may_hold_need_more_workers() {
        let per = fdlimit::connections_per_process(fdlimit::raise());
        let n = per * 2 + 1;
        assert_eq!(worker_count(n, None).expect("spreads by itself"), 3);
        let err = worker_count(n, Some(1)).expect_err("one worker cannot hold them");
        assert!(err.to_string().contains("open-file limit"), "{err}");
        assert_eq!(worker_count(10, Some(4)).expect("fits"), 4);
    }
}
