//! Frame decode and encode: the per-message cost every connection pays.
#![allow(clippy::unwrap_used)]

use chorus_protocol::frame::{decode_commands, encode_push, Publication};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::value::RawValue;

fn decode(c: &mut Criterion) {
    let one = br#"{"id":12,"publish":{"channel":"chat:room-42","data":{"text":"hello there, how is it going?","ts":1732262400123}}}"#;
    let batch: Vec<u8> = std::iter::repeat_n(&one[..], 10)
        .collect::<Vec<_>>()
        .join(&b'\n');
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function("publish_command", |b| {
        b.iter(|| decode_commands(black_box(one)).unwrap())
    });
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("batch_of_10", |b| {
        b.iter(|| decode_commands(black_box(&batch)).unwrap())
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let p = Publication {
        data: RawValue::from_string(
            r#"{"text":"hello there, how is it going?","ts":1732262400123}"#.into(),
        )
        .unwrap(),
        info: None,
        offset: 123456,
        tags: None,
        delta: false,
    };
    c.bench_function("encode/publication_push", |b| {
        b.iter(|| encode_push(black_box("chat:room-42"), "pub", &p))
    });
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
