//! Tunables of the engine: timers and the limits on what a peer can make us hold.

/// Engine settings. [`Config::default`] suits a daemon; tests shorten the timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Anti-entropy interval right after a thread changed, in milliseconds.
    pub sync_interval_min_ms: u64,
    /// Longest anti-entropy interval of a quiet thread, in milliseconds. The interval doubles
    /// after every quiet round up to this value, so an idle thread costs one digest (about 100
    /// bytes) per peer per this period.
    pub sync_interval_max_ms: u64,
    /// Timer jitter, as a percentage of the interval (0..=50), spreading digests of many threads.
    pub jitter_percent: u64,
    /// Largest number of records in one page or push: the most this host serves per page, and
    /// the most it asks for.
    pub page_max_records: u32,
    /// Records this host asks for per page when pulling (capped by `page_max_records`; the
    /// first page of a pull asks for an eighth of it, and pages shrink to fit
    /// `page_max_bytes`). Pages of a few hundred records keep several in flight during a
    /// catch-up, so a driver's verification stage checks the next ones while the engine stores
    /// one; a page of thousands leaves the cores idle while its first records travel and its
    /// last ones are stored. Larger pages save a transaction per page; a wider
    /// [`pull_window`](Self::pull_window) keeps more bytes in flight on a long round trip.
    pub pull_page_records: u32,
    /// How many pages of one log may be asked of a peer at once while catching up (1: ask for
    /// the next page only when the previous one is stored). With more, the next pages travel
    /// (and a driver's verification stage checks them) while the engine stores the current
    /// one. Pages beyond the first are asked for only up to the height the peer reported in
    /// its last page.
    pub pull_window: u32,
    /// Largest number of record bytes in one page (a page always carries at least one record).
    pub page_max_bytes: usize,
    /// How long a pull may stay unanswered before another peer may be asked, in milliseconds.
    /// Also how long the same heights are not sent again to a peer in answer to anti-entropy
    /// (spec/peer-protocol.md §3.1).
    pub pull_timeout_ms: u64,
    /// Largest message accepted from a peer, in bytes.
    pub max_message_len: usize,
    /// Largest number of logs a thread may have; records of further logs are refused.
    pub max_logs_per_thread: usize,
    /// Largest number of peers remembered per thread.
    pub max_peers_per_thread: usize,
    /// Largest number of threads a host holds; invitations beyond it are refused.
    pub max_threads: usize,
    /// Whether invitations to replicate a thread (service key only) are accepted.
    pub accept_invites: bool,
    /// Most entries the CID journal holds before they move into the sorted CID index in one
    /// transaction (0: every entry goes there at once). Larger values make catching up cheaper
    /// on a B-tree store, up to about the number of pages of the index; the journal is held in
    /// memory too (about 150 bytes an entry) and read whole when a host opens its store.
    pub cid_journal_max: usize,
    /// Deliberate defects, to show that the simulator's checkers catch them. Only in builds
    /// with the `buggify` feature; never enable them anywhere else.
    #[cfg(feature = "buggify")]
    pub bugs: Bugs,
}

/// Deliberate engine defects (feature `buggify`), each off by default.
#[cfg(feature = "buggify")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Accept records without checking their signature.
    pub skip_signature_check: bool,
    /// Acknowledge local writes without storing them.
    pub drop_local_writes: bool,
    /// Dispatch in two transactions: store the record and advance the head in one, run the
    /// application hook in a second one whose errors are ignored (go-threads #50, #547).
    pub split_dispatch: bool,
    /// Take a local write's Lamport clock from the host's clock (milliseconds) instead of
    /// 1 + the highest clock of the thread.
    pub clock_from_local_time: bool,
    /// Leave every 7th record out of the pushes this host sends.
    pub drop_every_7th_push: bool,
    /// Fill pages up to `page_max_records` whatever their size (ignore `page_max_bytes`).
    pub ignore_page_bytes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_interval_min_ms: 1_000,
            sync_interval_max_ms: 60_000,
            jitter_percent: 20,
            page_max_records: 512,
            pull_page_records: 512,
            pull_window: 1,
            page_max_bytes: 4 << 20,
            pull_timeout_ms: 10_000,
            max_message_len: 8 << 20,
            max_logs_per_thread: 4096,
            max_peers_per_thread: 64,
            max_threads: 100_000,
            accept_invites: true,
            cid_journal_max: 8_192,
            #[cfg(feature = "buggify")]
            bugs: Bugs::default(),
        }
    }
}
