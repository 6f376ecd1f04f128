//! Record check against its bound: the time to decode and verify one record bundle (what
//! ingest does per record: `RecordBundle::decode` + `record::verify`) next to a bare
//! ed25519-dalek `verify_strict` of the record's own signature (its log key, its signing input:
//! [`RecordSignature`]), both measured in the same run, interleaved in rounds so that machine
//! noise hits both alike.
//!
//! Prints one JSON line per body size (64 B, 256 B, 1 KiB):
//! `{"bench":"record_check","body_bytes":..,"record_check_us":..,"bare_verify_strict_us":..,
//! "ratio":..,"goal_ratio_max":1.2,"ok":..}`.
//!
//! `cargo run --release -p threads-benches --bin record_check -- [rounds] [per_round]`

use std::hint::black_box;
use std::time::Instant;
use threads_benches::{RecordFixture, RecordSignature, body};
use threads_protocol::record::{self, RecordBundle};

const SIZES: [usize; 3] = [64, 256, 1024];
const GOAL: f64 = 1.2;

/// Median of a list of figures.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut count = |default: usize| match args.next().map(|a| a.replace('_', "").parse()) {
        None => default,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: record_check [ROUNDS [PER_ROUND]]   (default: 30 200; integers)");
            std::process::exit(2)
        }
    };
    let rounds = count(30);
    let per_round = count(200);
    for len in SIZES {
        let mut fixture = RecordFixture::new(7);
        let sample = fixture.create(&body(len)).expect("valid record");
        let bundle = sample.record().bundle().clone();
        let bytes = bundle.encode();
        let service = fixture.key.service().clone();
        let (thread, log) = (fixture.thread, fixture.log);

        // The bound: the record's own signature check, bare.
        let signature = RecordSignature::of(&bundle, &log, &fixture.key);
        let msg_len = signature.input_len();

        let check = || {
            let b = RecordBundle::decode(black_box(&bytes)).expect("decodes");
            record::verify(b, &thread, &log, &service).expect("verifies")
        };
        let bare = || signature.verify();
        // Warm up both.
        for _ in 0..per_round {
            black_box(check());
            bare();
        }
        let (mut checks, mut bares) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let time = |f: &dyn Fn()| {
                let started = Instant::now();
                for _ in 0..per_round {
                    f();
                }
                started.elapsed().as_secs_f64() * 1e6 / per_round as f64
            };
            // Alternate which goes first, so drift in machine load favours neither.
            if round % 2 == 0 {
                checks.push(time(&|| drop(black_box(check()))));
                bares.push(time(&bare));
            } else {
                bares.push(time(&bare));
                checks.push(time(&|| drop(black_box(check()))));
            }
        }
        let ratios: Vec<f64> = checks.iter().zip(&bares).map(|(c, b)| c / b).collect();
        let (c, b, ratio) = (median(checks), median(bares), median(ratios));
        println!(
            "{{\"bench\":\"record_check\",\"body_bytes\":{len},\"signing_input_bytes\":{msg_len},\
             \"bundle_bytes\":{},\"rounds\":{rounds},\"per_round\":{per_round},\
             \"record_check_us\":{c:.2},\"bare_verify_strict_us\":{b:.2},\"ratio\":{ratio:.3},\
             \"goal_ratio_max\":{GOAL},\"ok\":{}}}",
            bytes.len(),
            ratio <= GOAL
        );
    }
}
