//! The figures an operator watches: counters and gauges shared by the engine task and the
//! swarm task, exported in the Prometheus text format and logged periodically.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters and gauges of one node. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Peers with at least one open connection (gauge).
    pub connected_peers: AtomicU64,
    /// Threads held (gauge).
    pub threads: AtomicU64,
    /// Records written by this host.
    pub records_written: AtomicU64,
    /// Records received from peers and stored.
    pub records_ingested: AtomicU64,
    /// Records stored but rejected by the database rules.
    pub records_rejected: AtomicU64,
    /// Records whose storing failed (fetched again later).
    pub apply_failures: AtomicU64,
    /// Times a peer sent something invalid or hostile.
    pub peers_misbehaved: AtomicU64,
    /// Sync message bytes received.
    pub bytes_received: AtomicU64,
    /// Sync message bytes handed to the network.
    pub bytes_queued: AtomicU64,
    /// Sync message bytes sent to peers.
    pub bytes_sent: AtomicU64,
    /// Engine messages dropped because a queue or a peer's outbound budget was full.
    pub transmits_dropped: AtomicU64,
    /// Inbound sync messages refused because the engine was too far behind.
    pub inbound_refused: AtomicU64,
    /// Durable write commits.
    pub commits: AtomicU64,
    /// Sum of commit latencies, in microseconds.
    pub commit_micros_total: AtomicU64,
    /// Largest commit latency seen, in microseconds.
    pub commit_micros_max: AtomicU64,
    /// Time the engine waited for writers it had just answered to join the next group commit,
    /// in microseconds.
    pub group_wait_micros: AtomicU64,
    /// Records peers reported that this node does not hold yet, over all threads (gauge).
    pub sync_lag: AtomicU64,
    /// The threads with a sync lag, and theirs (at most [`MAX_LAG_LABELS`]).
    pub lagging: std::sync::Mutex<Vec<(String, u64)>>,
}

/// Most threads listed with their own sync lag in the exposition.
pub const MAX_LAG_LABELS: usize = 100;

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(&self, gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Records the latency of one durable commit.
    pub fn observe_commit(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.commit_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    fn all(&self) -> [(&'static str, &'static str, &'static str, u64); 17] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "threads_connected_peers",
                "gauge",
                "Peers with an open connection.",
                g(&self.connected_peers),
            ),
            (
                "threads_threads",
                "gauge",
                "Threads held.",
                g(&self.threads),
            ),
            (
                "threads_records_written_total",
                "counter",
                "Records written by this host.",
                g(&self.records_written),
            ),
            (
                "threads_records_ingested_total",
                "counter",
                "Records received from peers and stored.",
                g(&self.records_ingested),
            ),
            (
                "threads_records_rejected_total",
                "counter",
                "Records stored without effect (database rules).",
                g(&self.records_rejected),
            ),
            (
                "threads_apply_failures_total",
                "counter",
                "Records whose storing failed.",
                g(&self.apply_failures),
            ),
            (
                "threads_peers_misbehaved_total",
                "counter",
                "Invalid or hostile messages from peers.",
                g(&self.peers_misbehaved),
            ),
            (
                "threads_sync_bytes_received_total",
                "counter",
                "Sync bytes received.",
                g(&self.bytes_received),
            ),
            (
                "threads_sync_bytes_queued_total",
                "counter",
                "Sync bytes handed to the network.",
                g(&self.bytes_queued),
            ),
            (
                "threads_sync_bytes_sent_total",
                "counter",
                "Sync bytes sent to peers.",
                g(&self.bytes_sent),
            ),
            (
                "threads_sync_messages_dropped_total",
                "counter",
                "Sync messages dropped by full queues.",
                g(&self.transmits_dropped),
            ),
            (
                "threads_commits_total",
                "counter",
                "Durable write commits.",
                g(&self.commits),
            ),
            (
                "threads_commit_seconds_sum",
                "counter",
                "Total durable commit time.",
                g(&self.commit_micros_total),
            ),
            (
                "threads_commit_seconds_max",
                "gauge",
                "Slowest durable commit.",
                g(&self.commit_micros_max),
            ),
            (
                "threads_group_wait_seconds_sum",
                "counter",
                "Time spent waiting for answered writers to join the next group commit.",
                g(&self.group_wait_micros),
            ),
            (
                "threads_sync_messages_refused_total",
                "counter",
                "Inbound sync messages refused while the engine was behind.",
                g(&self.inbound_refused),
            ),
            (
                "threads_sync_lag_records",
                "gauge",
                "Records peers have that this node does not, all threads.",
                g(&self.sync_lag),
            ),
        ]
    }

    /// The Prometheus text exposition of every figure.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in self.all() {
            let value = if name.contains("seconds") {
                format!("{}", value as f64 / 1e6)
            } else {
                value.to_string()
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        if let Ok(lagging) = self.lagging.lock()
            && !lagging.is_empty()
        {
            let name = "threads_thread_sync_lag_records";
            let _ = writeln!(
                out,
                "# HELP {name} Records peers have that this node does not, per lagging thread.\n# TYPE {name} gauge"
            );
            for (thread, lag) in lagging.iter() {
                let _ = writeln!(out, "{name}{{thread=\"{thread}\"}} {lag}");
            }
        }
        out
    }

    /// One line with every figure, for the periodic debug log.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, _, _, value) in self.all() {
            let short = name
                .trim_start_matches("threads_")
                .trim_end_matches("_total");
            let _ = write!(out, "{short}={value} ");
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_figure() {
        let m = Metrics::default();
        m.add(&m.records_ingested, 3);
        m.observe_commit(Duration::from_micros(1500));
        m.add(&m.group_wait_micros, 250);
        let text = m.prometheus();
        assert!(
            text.contains("threads_records_ingested_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("threads_commit_seconds_sum 0.0015\n"),
            "{text}"
        );
        assert!(
            text.contains("threads_group_wait_seconds_sum 0.00025\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 17);
        *m.lagging.lock().unwrap() = vec![("bafk".into(), 7)];
        assert!(
            m.prometheus()
                .contains("threads_thread_sync_lag_records{thread=\"bafk\"} 7\n")
        );
        assert!(m.summary().contains("records_ingested=3"));
    }
}
