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

/// A lowercase ULID with a fixed timestamp (as `txn_create` makes them within one
/// millisecond): random order.
pub fn ulid(rng: &mut ProtocolRng) -> String {
    let random = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    let value = (u128::from(NANOS / 1_000_000) << 80) | (random >> 48);
    (0..26)
        .map(|i| char::from(CROCKFORD[((value >> (5 * (25 - i))) & 31) as usize]))
        .collect()
}

/// The ids and field values of `n` instances, drawn from `rng`.
pub struct People {
    /// Instance ids.
    pub ids: Vec<String>,
    /// `age` of each instance.
    pub ages: Vec<u8>,
    /// `city` number of each instance.
    pub cities: Vec<u8>,
}

impl People {
    /// `n` instances with random ids, ages and cities.
    pub fn new(n: usize, rng: &mut ProtocolRng) -> Self {
        let mut d = People {
            ids: Vec::with_capacity(n),
            ages: Vec::with_capacity(n),
            cities: Vec::with_capacity(n),
        };
        for _ in 0..n {
            d.ids.push(ulid(rng));
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
