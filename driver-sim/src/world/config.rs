//! Engine configurations of simulated hosts: the simulator's defaults, and the configurations
//! drawn for swarm testing.

use crate::Options;
use threads_protocol::engine::Config;
use threads_protocol::rng::{ProtocolRng, Rng};

/// The engine configuration of a host: the drawn swarm configuration if any, else the
/// simulator's defaults, then adjusted by the run's `configure` hook.
pub(super) fn engine_config(opts: &Options, swarm: Option<&Config>) -> Config {
    let mut c = match swarm {
        Some(c) => c.clone(),
        None => Config {
            sync_interval_min_ms: 200,
            sync_interval_max_ms: 5_000,
            pull_timeout_ms: 2_000,
            max_message_len: 1 << 20,
            page_max_records: 64,
            page_max_bytes: 256 << 10,
            ..Config::default()
        },
    };
    if let Some(f) = opts.configure {
        f(&mut c);
    }
    c
}

/// Draws an engine configuration (swarm testing of the configuration). Limits stay consistent
/// with each other (a page fits in a message) and with the run (every writer can have its log).
pub(super) fn swarm_config(rng: &mut ProtocolRng, writers: usize, adversary: bool) -> Config {
    let mut pick = |xs: &[u64]| xs[(rng.next_u64() % xs.len() as u64) as usize];
    let max_message_len = pick(&[4 << 10, 16 << 10, 1 << 20]) as usize;
    let page_max_bytes = pick(&[1, 100, 1_000, 2_048, (max_message_len / 2) as u64]) as usize;
    let sync_interval_min_ms = pick(&[20, 200, 1_000]);
    let sync_interval_max_ms = sync_interval_min_ms * pick(&[1, 5, 25]);
    let max_logs_per_thread = if pick(&[0, 1]) == 0 {
        writers + usize::from(adversary)
    } else {
        Config::default().max_logs_per_thread
    };
    Config {
        sync_interval_min_ms,
        sync_interval_max_ms,
        jitter_percent: pick(&[0, 20, 50]),
        page_max_records: pick(&[1, 2, 3, 8, 64, 512]) as u32,
        page_max_bytes: page_max_bytes.min(max_message_len / 2),
        pull_timeout_ms: pick(&[100, 2_000, 10_000]),
        max_message_len,
        max_logs_per_thread,
        ..Config::default()
    }
}
