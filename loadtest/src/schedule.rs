//! Publishes at a fixed rate for a fixed time, in order per channel.
//!
//! Every channel belongs to one lane and a lane publishes one call at a time, so the sequence
//! numbers of a channel reach the server in order while lanes run concurrently. A server that
//! cannot keep up slows the lanes, and the achieved rate in the outcome shows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::payload;
use crate::publisher::Publisher;

pub struct Schedule {
    pub rate: f64,
    pub duration: Duration,
    pub max_messages: Option<u64>,
    pub lanes: usize,
    pub payload_size: usize,
    /// Seed for choosing channels when there are several.
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Publications attempted per channel; sequence numbers 1..=published[c] were used.
    pub published: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// When the first publication was due, Unix µs.
    pub started_us: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn total(&self) -> u64 {
        self.published.iter().sum()
    }
}

/// Runs the schedule over `channels`; `sent` counts publications as they are handed to lanes.
pub async fn run(
    publisher: Arc<dyn Publisher>,
    channels: Arc<Vec<String>>,
    schedule: Schedule,
    sent: Arc<AtomicU64>,
) -> Outcome {
    let lanes = schedule.lanes.clamp(1, channels.len().max(1));
    let mut senders = Vec::with_capacity(lanes);
    let mut tasks = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (tx, rx) = mpsc::channel::<usize>(1024);
        senders.push(tx);
        tasks.push(tokio::spawn(lane(
            publisher.clone(),
            channels.clone(),
            rx,
            schedule.payload_size,
        )));
    }
    let mut rng = fastrand::Rng::with_seed(schedule.seed);
    let started_us = payload::now_micros();
    let start = Instant::now();
    let max = schedule.max_messages.unwrap_or(u64::MAX);
    let mut handed = 0u64;
    loop {
        let elapsed = start.elapsed();
        let due = ((elapsed.as_secs_f64() * schedule.rate) as u64).min(max);
        while handed < due {
            let channel = if channels.len() == 1 {
                0
            } else {
                rng.usize(..channels.len())
            };
            if senders[channel % lanes].send(channel).await.is_err() {
                break;
            }
            handed += 1;
            sent.store(handed, Ordering::Relaxed);
        }
        if handed >= max || elapsed >= schedule.duration {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(senders);
    let mut outcome = Outcome {
        published: vec![0; channels.len()],
        started_us,
        ..Outcome::default()
    };
    for task in tasks {
        let Ok(lane) = task.await else { continue };
        for (c, n) in lane.published {
            outcome.published[c] += n;
        }
        outcome.errors += lane.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = lane.first_error;
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

struct Lane {
    published: HashMap<usize, u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn lane(
    publisher: Arc<dyn Publisher>,
    channels: Arc<Vec<String>>,
    mut rx: mpsc::Receiver<usize>,
    payload_size: usize,
) -> Lane {
    let mut lane = Lane {
        published: HashMap::new(),
        errors: 0,
        first_error: None,
    };
    while let Some(c) = rx.recv().await {
        let seq = lane.published.entry(c).or_default();
        *seq += 1;
        let data = payload::encode(payload::now_micros(), *seq, payload_size);
        if let Err(e) = publisher.publish(&channels[c], &data).await {
            lane.errors += 1;
            lane.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    lane
}
