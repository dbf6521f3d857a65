//! Stripe encode, decode with shards missing, and BLAKE3 framing, per erasure layout.
//! Reports throughput in object bytes per second; it does not fail.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera::erasure::{frame, Codec};

const STRIPE: usize = 1 << 20;
const LAYOUTS: [(usize, usize); 3] = [(4, 2), (8, 4), (12, 4)];

fn stripe() -> Bytes {
    (0..STRIPE).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn encode(c: &mut Criterion) {
    let data = stripe();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(STRIPE as u64));
    for (k, m) in LAYOUTS {
        let codec = Codec::new(k, m, STRIPE).unwrap();
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{k}+{m}")),
            &data,
            |b, d| b.iter(|| codec.encode(d).unwrap()),
        );
    }
    g.finish();
}

fn decode_two_missing(c: &mut Criterion) {
    let data = stripe();
    let mut g = c.benchmark_group("decode_2_data_shards_missing");
    g.throughput(Throughput::Bytes(STRIPE as u64));
    for (k, m) in LAYOUTS {
        let codec = Codec::new(k, m, STRIPE).unwrap();
        let shards = codec.encode(&data).unwrap();
        g.bench_function(BenchmarkId::from_parameter(format!("{k}+{m}")), |b| {
            b.iter(|| {
                let mut input: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
                input[0] = None;
                input[1] = None;
                codec.decode(input, STRIPE).unwrap()
            })
        });
        // What a degraded GET does: rebuild the two data shards; the others are not copied.
        g.bench_function(BenchmarkId::new("recover", format!("{k}+{m}")), |b| {
            b.iter(|| {
                let mut input: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
                input[0] = None;
                input[1] = None;
                codec.recover(&input, |i| i < k).unwrap()
            })
        });
    }
    g.finish();
}

fn blake3_framing(c: &mut Criterion) {
    let data = stripe();
    let mut g = c.benchmark_group("blake3_frame");
    g.throughput(Throughput::Bytes(STRIPE as u64));
    for (k, m) in LAYOUTS {
        let codec = Codec::new(k, m, STRIPE).unwrap();
        let shards = codec.encode(&data).unwrap();
        g.bench_function(BenchmarkId::new("frame", format!("{k}+{m}")), |b| {
            b.iter(|| {
                shards
                    .iter()
                    .map(|s| frame::Framed::new(s.clone()))
                    .collect::<Vec<_>>()
            })
        });
        let frames: Vec<Bytes> = shards.iter().map(|s| frame::encode(s)).collect();
        g.bench_function(BenchmarkId::new("verify", format!("{k}+{m}")), |b| {
            b.iter(|| {
                frames
                    .iter()
                    .map(|f| frame::decode(f).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode_two_missing, blake3_framing);
criterion_main!(benches);
