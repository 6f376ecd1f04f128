//! Record throughput: creating (seal, sign, seal), verifying with the service key only, and
//! opening with the read key, for bodies of 64 B, 1 KiB and 16 KiB; next to `verify` the bound,
//! a bare ed25519-dalek `verify_strict` of the record's own signature (`bare_verify_strict`).
//! The `record_check` bin prints their ratio.
//!
//! `cargo bench -p threads-benches --bench records`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use threads_benches::{RecordFixture, RecordSignature, body};
use threads_protocol::record;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (16 * 1024, "16KiB")];

fn records(c: &mut Criterion) {
    for (len, label) in SIZES {
        let payload = body(len);
        let mut fixture = RecordFixture::new(7);
        let sample = fixture.create(&payload).expect("valid record");
        let bundle = sample.record().bundle().clone();
        let verified = sample.into_record();
        let read = fixture.key.read().expect("fixture has a read key").clone();
        let service = fixture.key.service().clone();

        let mut group = c.benchmark_group("records");
        // Both figures per run: MiB/s of body and records/s.
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: len as u64,
        });
        group.bench_function(format!("create/{label}"), |b| {
            b.iter(|| fixture.create(black_box(&payload)).expect("valid record"))
        });
        group.bench_function(format!("verify/{label}"), |b| {
            b.iter_batched(
                || bundle.clone(),
                |bundle| {
                    record::verify(bundle, &fixture.thread, &fixture.log, &service)
                        .expect("valid record")
                },
                BatchSize::SmallInput,
            )
        });
        let signature = RecordSignature::of(&bundle, &fixture.log, &fixture.key);
        group.bench_function(format!("bare_verify_strict/{label}"), |b| {
            b.iter(|| signature.verify())
        });
        group.bench_function(format!("open/{label}"), |b| {
            b.iter_batched(
                || verified.clone(),
                |verified| record::open(verified, &read).expect("valid record"),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, records);
criterion_main!(benches);
