//! The simulator is deterministic, its checkers pass on the real engine, and they catch an engine
//! with planted bugs.

use threads_protocol::engine::Config;
use threads_sim::{FaultProfile, Options, run};

/// A small shape that keeps debug-build tests quick.
fn small() -> Options {
    Options {
        hosts: 4,
        ops: 40,
        ..Options::default()
    }
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in 0..6 {
        let a = run(seed, &small());
        let b = run(seed, &small());
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} is not reproducible"
        );
        assert_eq!(a.events, b.events);
    }
    assert_ne!(run(1, &small()).trace_hash, run(2, &small()).trace_hash);
}

#[test]
fn calm_network_converges_with_every_invariant() {
    let opts = Options {
        profile: Some(FaultProfile::calm()),
        ..small()
    };
    let r = run(7, &opts);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    // Some writes are refused by the database (creates of ids the writer already holds); the
    // collection definition and most writes are acknowledged.
    assert!(r.acked > 10, "{} acknowledged writes", r.acked);
    assert!(r.converged_after_ms.is_some());
}

#[test]
fn regression_seeds_hold() {
    let text = include_str!("../regressions.txt");
    let seeds: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split('#').next()?.trim().parse().ok())
        .collect();
    assert!(!seeds.is_empty());
    for seed in seeds {
        let r = run(seed, &Options::default());
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn short_random_sweep_holds() {
    for seed in 1000..1012 {
        let r = run(seed, &small());
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

fn hostile_profile() -> FaultProfile {
    FaultProfile {
        adversary: true,
        ..FaultProfile::calm()
    }
}

#[test]
fn checker_catches_an_engine_that_skips_signature_checks() {
    fn skip(c: &mut Config) {
        c.bugs.skip_signature_check = true;
    }
    let opts = Options {
        profile: Some(hostile_profile()),
        configure: Some(skip),
        ..small()
    };
    let caught = (0..10).any(|seed| {
        run(seed, &opts)
            .violations
            .iter()
            .any(|v| v.invariant == "forged-accepted")
    });
    assert!(caught, "forged records went unnoticed");
    // The same runs on the correct engine are clean.
    let honest = Options {
        configure: None,
        ..opts
    };
    for seed in 0..10 {
        let r = run(seed, &honest);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn checker_catches_an_engine_that_acknowledges_unstored_writes() {
    fn drop_writes(c: &mut Config) {
        c.bugs.drop_local_writes = true;
    }
    let opts = Options {
        profile: Some(FaultProfile::calm()),
        configure: Some(drop_writes),
        ..small()
    };
    let r = run(3, &opts);
    assert!(
        r.violations.iter().any(|v| v.invariant == "lost-write"),
        "{:?}",
        r.violations
    );
}

#[test]
fn a_writer_offline_for_most_of_the_run_comes_back_clean() {
    let opts = Options {
        profile: Some(FaultProfile {
            offline_writer: true,
            ..FaultProfile::calm()
        }),
        ..small()
    };
    let mut late = 0;
    for seed in 0..4 {
        let r = run(seed, &opts);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.converged_after_ms.is_some(), "seed {seed}");
        late += r.fold.late;
    }
    assert!(
        late > 0,
        "the returning writer's records arrive late somewhere"
    );
}
