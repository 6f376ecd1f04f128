//! Record check against its bound: the time to decode and verify one record bundle (what
//! ingest does per record: `RecordBundle::decode` + `record::verify`) next to a bare
//! ed25519-dalek `verify_strict` of the record's own signature (its log key, its signing input:
//! [`RecordSignature`]), both measured in the same run, interleaved in rounds so that machine
//! noise hits both alike.
//!
//! Both are timed at [`STACK_POSITIONS`] depths of the stack ([`threads_benches::stack`]: at
//! one depth the ratio is decided by where address-space randomisation put the stack, 1.07×
//! in one process and 1.27× in the next), rounds `2k` and `2k + 1` (one with the check first,
//! one with the bare check first) at position `k % STACK_POSITIONS`.
//!
//! Prints one JSON line per body size (64 B, 256 B, 1 KiB):
//! `{"bench":"record_check","body_bytes":..,"record_check_us":..,"bare_verify_strict_us":..,
//! "ratio":..,"ratio_min":..,"ratio_max":..,"stack_positions":16,"goal_ratio_max":1.2,"ok":..}`
//! (`ratio` is the median of the rounds' ratios; `ratio_min` and `ratio_max` the lowest and
//! highest of them).
//!
//! `cargo run --release -p threads-benches --bin record_check -- [rounds] [per_round]`
//! (rounds: a multiple of 32 visits every position equally often, in both orders; default 32).

use std::hint::black_box;
use std::time::Instant;
use threads_benches::stack::{self, POSITIONS as STACK_POSITIONS};
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
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!(
                "usage: record_check [ROUNDS [PER_ROUND]]   (default: 32 200; positive integers)"
            );
            std::process::exit(2)
        }
    };
    let rounds = count(32);
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
                let mut us = 0.0;
                stack::at_depth(round / 2 % STACK_POSITIONS, &mut || {
                    let started = Instant::now();
                    for _ in 0..per_round {
                        f();
                    }
                    us = started.elapsed().as_secs_f64() * 1e6 / per_round as f64;
                });
                us
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
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = ratios.iter().copied().fold(0.0, f64::max);
        let (c, b, ratio) = (median(checks), median(bares), median(ratios));
        println!(
            "{{\"bench\":\"record_check\",\"body_bytes\":{len},\"signing_input_bytes\":{msg_len},\
             \"bundle_bytes\":{},\"rounds\":{rounds},\"per_round\":{per_round},\
             \"record_check_us\":{c:.2},\"bare_verify_strict_us\":{b:.2},\"ratio\":{ratio:.3},\
             \"ratio_min\":{lowest:.3},\"ratio_max\":{highest:.3},\
             \"stack_positions\":{STACK_POSITIONS},\"goal_ratio_max\":{GOAL},\"ok\":{}}}",
            bytes.len(),
            ratio <= GOAL
        );
    }
}
