//! The `people` fixture shared by the document benchmarks (`documents`, `disk`): one collection
//! with a JSON schema and an index on `age`, and seeded instances of about 116 bytes of JSON.

use serde_json::{Value, json};
use threads_protocol::rng::{ProtocolRng, Rng};
use threads_reducer::db::{CollectionConfig, IndexSpec};

/// The collection's name.
pub const COLLECTION: &str = "people";
/// Distinct values of `age` (0..AGES).
pub const AGES: u64 = 100;
/// Distinct values of `city` (`city-00`..).
pub const CITIES: u64 = 100;
/// `_mod` and the record time of every write.
pub const NANOS: u64 = 1_700_000_000_000_000_000;

/// The collection: a schema with `_id`, `name`, `age`, `city`, and an index on `age`.
pub fn collection() -> CollectionConfig {
    CollectionConfig {
        name: COLLECTION.into(),
        schema: json!({
            "type": "object",
            "properties": {
                "_id": {"type": "string"},
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "city": {"type": "string"}
            }
        }),
        indexes: vec![IndexSpec {
            path: "age".into(),
            unique: false,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Instances per write transaction in the document benchmarks.
pub const BATCH: usize = 1_000;

/// Milliseconds between two transactions of [`BATCH`] creates at the insert goal's rate
/// (100k instances/s).
const MS_PER_BATCH: u64 = 10;

/// A lowercase ULID for millisecond `ms`, its random part drawn from `rng` alone.
pub fn ulid_at(ms: u64, rng: &mut ProtocolRng) -> String {
    encode_ulid(ms, random_part(rng))
}

/// 80 random bits, kept below 2^79 so that counting up within a batch cannot carry into the
/// time.
fn random_part(rng: &mut ProtocolRng) -> u128 {
    let random = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    random >> 49
}

/// The lowercase ULID of millisecond `ms` and 80-bit `random`.
fn encode_ulid(ms: u64, random: u128) -> String {
    let value = (u128::from(ms) << 80) | random;
    (0..26)
        .map(|i| char::from(CROCKFORD[((value >> (5 * (25 - i))) & 31) as usize]))
        .collect()
}

/// A lowercase ULID at the fixed time [`NANOS`]: random order among all such ids.
pub fn ulid(rng: &mut ProtocolRng) -> String {
    ulid_at(NANOS / 1_000_000, rng)
}

/// How the fixture's instance ids are made. `Documents` gives every instance a transaction
/// creates a ULID of the transaction's millisecond, each id above the one before (ULID's
/// monotonic mode: the random part grows by a random step), so ids grow within a transaction and
/// from one transaction to the next ([`IdTiming::PerBatch`], the default: batch `k` is stamped
/// `k × 10 ms`, the goal's rate, and counts up within the batch). [`IdTiming::OneMillisecond`]
/// draws every id at random within one millisecond, as ids a client chooses itself (UUIDs, say)
/// may be: inserts then land at random places of the whole key space, the worst case, and what
/// rounds before 2026-11-30 measured. `PEOPLE_IDS=one-ms` selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTiming {
    /// Ids of batch `k` carry millisecond `k × 10` after [`NANOS`] and grow within the batch.
    PerBatch,
    /// Every id carries the millisecond of [`NANOS`] and a random part drawn alone.
    OneMillisecond,
}

impl IdTiming {
    /// From `PEOPLE_IDS` (`per-batch`, the default, or `one-ms`).
    pub fn from_env() -> Self {
        match std::env::var("PEOPLE_IDS").as_deref() {
            Ok("one-ms") => IdTiming::OneMillisecond,
            _ => IdTiming::PerBatch,
        }
    }

    /// The name printed in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            IdTiming::PerBatch => "per-batch",
            IdTiming::OneMillisecond => "one-ms",
        }
    }

    /// The millisecond of instance `i`'s id.
    fn ms(self, i: usize) -> u64 {
        let base = NANOS / 1_000_000;
        match self {
            IdTiming::PerBatch => base + (i / BATCH) as u64 * MS_PER_BATCH,
            IdTiming::OneMillisecond => base,
        }
    }
}

/// The ids and field values of `n` instances, drawn from `rng`.
pub struct People {
    /// How the ids are timed.
    pub timing: IdTiming,
    /// Instance ids.
    pub ids: Vec<String>,
    /// `age` of each instance.
    pub ages: Vec<u8>,
    /// `city` number of each instance.
    pub cities: Vec<u8>,
}

impl People {
    /// `n` instances with ids timed as `PEOPLE_IDS` says ([`IdTiming::from_env`]), random
    /// ages and cities.
    pub fn new(n: usize, rng: &mut ProtocolRng) -> Self {
        Self::with_ids(n, IdTiming::from_env(), rng)
    }

    /// `n` instances with ids timed by `timing`, random ages and cities.
    pub fn with_ids(n: usize, timing: IdTiming, rng: &mut ProtocolRng) -> Self {
        let mut d = People {
            timing,
            ids: Vec::with_capacity(n),
            ages: Vec::with_capacity(n),
            cities: Vec::with_capacity(n),
        };
        let mut last: Option<(u64, u128)> = None;
        for i in 0..n {
            let ms = timing.ms(i);
            let step = u128::from(rng.next_u64() >> 32) + 1;
            let random = match last {
                Some((last_ms, r)) if timing == IdTiming::PerBatch && last_ms == ms => r + step,
                _ => random_part(rng),
            };
            last = Some((ms, random));
            d.ids.push(encode_ulid(ms, random));
            d.ages.push((rng.next_u64() % AGES) as u8);
            d.cities.push((rng.next_u64() % CITIES) as u8);
        }
        d
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The full document of instance `i` at `version` (without `_mod`).
    pub fn doc(&self, i: usize, version: u64) -> Value {
        json!({
            "_id": self.ids[i],
            "name": format!("person-{i:07}-v{version}"),
            "age": self.ages[i],
            "city": format!("city-{:02}", self.cities[i]),
        })
    }

    /// Instance `i` as stored after its create (with `_mod`).
    pub fn instance(&self, i: usize) -> Value {
        let mut instance = self.doc(i, 0);
        instance["_mod"] = json!(NANOS);
        instance
    }
}

/// The `p`th percentile (nearest rank) of `v`, sorting it; NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `x` rounded to `digits` decimals, as a JSON number.
pub fn round(x: f64, digits: i32) -> Value {
    let m = 10f64.powi(digits);
    json!((x * m).round() / m)
}
