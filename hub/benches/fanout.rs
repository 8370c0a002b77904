//! Fan-out of one publication to 10k local subscribers: encode once, queue shared bytes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_hub::client::frame::{self, Shared};
use chorus_hub::client::ClientHandle;
use chorus_hub::hub::Hub;
use chorus_protocol::frame::Publication;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::value::RawValue;

fn fanout(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 10_000;
    let hub = Hub::default();
    let channel: Arc<str> = "chat:room".into();
    let clients: Vec<Arc<ClientHandle>> = (0..SUBSCRIBERS)
        .map(|i| {
            let h = Arc::new(ClientHandle::new(format!("client-{i}").into(), 1 << 30));
            hub.subscribe(&channel, &h, false, false, false, None);
            h
        })
        .collect();
    let publication = Publication {
        data: RawValue::from_string(r#"{"text":"hello there","ts":1732262400123}"#.into()).unwrap(),
        info: None,
        offset: 42,
        tags: None,
        delta: false,
    };
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.bench_function("encode_and_queue_to_10k_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut sink = Vec::new();
            for _ in 0..iters {
                let start = Instant::now();
                let encode = |p| frame::push(p, &channel, "pub", &publication);
                let frames = Shared::new(&encode);
                hub.broadcast(&channel, publication.offset, 0, "", &frames, start);
                total += start.elapsed();
                // Drained outside the timing, as the connection tasks would.
                for h in &clients {
                    h.drain_for_bench(&mut sink);
                    sink.clear();
                }
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
