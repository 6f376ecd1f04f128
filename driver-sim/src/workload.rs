//! The simulated workload: write transactions of the real document database, drawn from the
//! run's RNG. Ids come from a small pool so that writers clash often: concurrent creates of one
//! id, saves racing deletes, and a unique index on `n` exercise conflict resolution.

use serde_json::json;
use threads_protocol::rng::Rng;
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, IndexSpec};

/// The collection every run writes to.
pub const COLLECTION: &str = "items";
/// How many distinct instance ids writers pick from.
const IDS: u64 = 40;

/// The body of host 0's first record: the collection definition (schema and a unique index).
pub fn define_collection() -> Vec<u8> {
    Batch::new(vec![DbEvent::CreateCollection(CollectionConfig {
        name: COLLECTION.into(),
        schema: json!({
            "type": "object",
            "properties": {
                "_id": {"type": "string"},
                "n": {"type": "integer"},
                "tag": {"type": "string"}
            },
            "required": ["n"]
        }),
        indexes: vec![IndexSpec {
            path: "n".into(),
            unique: true,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    })])
    .encode()
}

/// One write transaction of one to three events; `k` numbers the write (its bodies carry the
/// marker `sim-body-<k>`, which replicators must never hold in clear).
pub fn transaction(rng: &mut impl Rng, k: usize) -> Vec<u8> {
    let count = 1 + rng.next_u64() % 3;
    let mut events = Vec::new();
    for _ in 0..count {
        let id = format!("i{}", rng.next_u64() % IDS);
        let n = rng.next_u64() % 1000;
        let tag = format!("sim-body-{k}");
        events.push(match rng.next_u64() % 4 {
            0 | 1 => DbEvent::Create {
                collection: COLLECTION.into(),
                id: id.clone(),
                instance: json!({"_id": id, "n": n, "tag": tag, "_mod": k}),
            },
            2 => DbEvent::Save {
                collection: COLLECTION.into(),
                id,
                patch: json!({"n": n, "tag": tag, "_mod": k}),
            },
            _ => DbEvent::Delete {
                collection: COLLECTION.into(),
                id,
            },
        });
    }
    Batch::new(events).encode()
}
