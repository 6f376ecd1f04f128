//! Part 3 of the document benchmark: indexed and unindexed queries, and the goal lines of
//! goal 5 (see the binary's docs).

use std::time::Instant;

use serde_json::{Value, json};
use threads_benches::people::{COLLECTION, percentile, round};
use threads_protocol::id::ThreadId;
use threads_protocol::store::Store;
use threads_reducer::db::keys::Keys;
use threads_reducer::db::lookup::{query_threads, set_query_threads};
use threads_reducer::docs::Documents;
use threads_reducer::query::{Query, plan};

use super::bare::{bare_gets, grouped_bare_gets, split_bare_gets};
use super::{
    Data, GOAL_PER_HIT_US, GOAL_SCAN_PER_SEC, GOAL_SINGLE_HIT_US, MIN_QUERY_RUNS, QUERY_BUDGET,
    QUERY_RUNS, SINGLE_AGE, emit, median, us,
};

/// A short name of the plan the reducer picks for `query` with an index on `age`.
fn plan_name(query: &Query) -> String {
    match plan(query, |p| p.as_str() == "age") {
        Ok(p) => format!("{p:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// 3. Indexed and unindexed queries.
pub(super) fn queries<S: Store>(docs: &mut Documents<S>, db: &ThreadId, data: &Data, ctx: &Value) {
    let n = data.len();
    let count_age = |f: &dyn Fn(u8) -> bool| data.ages.iter().filter(|a| f(**a)).count();
    let count_city = |f: &dyn Fn(u8) -> bool| data.cities.iter().filter(|c| f(**c)).count();
    let cases: [(&str, bool, Value, usize); 5] = [
        (
            "indexed_eq_single",
            true,
            json!({"age": SINGLE_AGE}),
            count_age(&|a| a == SINGLE_AGE),
        ),
        (
            "indexed_eq",
            true,
            json!({"age": 42}),
            count_age(&|a| a == 42),
        ),
        (
            "indexed_range",
            true,
            json!({"age": {"$gte": 30, "$lt": 32}}),
            count_age(&|a| (30..32).contains(&a)),
        ),
        (
            "unindexed_eq",
            false,
            json!({"city": "city-42"}),
            count_city(&|c| c == 42),
        ),
        (
            "unindexed_range",
            false,
            json!({"city": {"$gte": "city-30", "$lt": "city-32"}}),
            count_city(&|c| (30..32).contains(&c)),
        ),
    ];
    for (test, indexed, json, expected) in cases {
        let query = Query::from_json(&json).expect("query");
        // The anchor of the per-hit figure: the store's own look-ups of the same instances'
        // keys, in the same order (ID order, as the index yields them), reading nothing else.
        let bare_keys: Vec<Vec<u8>> = if test == "indexed_eq" {
            let keys = Keys::new(db);
            (0..n)
                .filter(|&i| data.ages[i] == 42)
                .map(|i| keys.instance(COLLECTION, &data.ids[i]))
                .collect()
        } else {
            Vec::new()
        };
        // The forms alternate, so that load on the machine touches them alike.
        let (mut times, mut parsed_times, mut bare_times) = (Vec::new(), Vec::new(), Vec::new());
        let (mut one_times, mut split_bare_times) = (Vec::new(), Vec::new());
        let mut grouped_bare_times = Vec::new();
        let mut results = 0;
        let started = Instant::now();
        while times.len() < QUERY_RUNS
            && (times.len() < MIN_QUERY_RUNS || started.elapsed() < QUERY_BUDGET)
        {
            let t = Instant::now();
            let rows = docs
                .find_json(db, COLLECTION, &query, None)
                .expect("find_json");
            times.push(us(t.elapsed()));
            results = rows.len();
            drop(rows);
            let t = Instant::now();
            let rows = docs.find(db, COLLECTION, &query, None).expect("find");
            parsed_times.push(us(t.elapsed()));
            assert_eq!(rows.len(), results, "{test}: find and find_json disagree");
            if indexed {
                set_query_threads(1);
                let t = Instant::now();
                let rows = docs
                    .find_json(db, COLLECTION, &query, None)
                    .expect("find_json");
                one_times.push(us(t.elapsed()));
                set_query_threads(0);
                assert_eq!(
                    rows.len(),
                    results,
                    "{test}: one thread found another count"
                );
            }
            if !bare_keys.is_empty() {
                let t = Instant::now();
                let found = split_bare_gets(docs.host().store(), &bare_keys, query_threads());
                split_bare_times.push(us(t.elapsed()));
                assert_eq!(found, results, "{test}: split look-ups found another count");
                let t = Instant::now();
                let found = bare_gets(docs.host().store(), &bare_keys);
                bare_times.push(us(t.elapsed()));
                assert_eq!(found, results, "{test}: bare look-ups found another count");
                let t = Instant::now();
                let found = grouped_bare_gets(docs.host().store(), &bare_keys);
                grouped_bare_times.push(us(t.elapsed()));
                assert_eq!(
                    found, results,
                    "{test}: grouped look-ups found another count"
                );
            }
        }
        assert_eq!(results, expected, "{test}: wrong result count");
        let runs = times.len();
        let med = median(&mut times);
        let med_parsed = median(&mut parsed_times);
        let mut line = json!({
            "test": "query",
            "query": test,
            "filter": json,
            "plan": plan_name(&query),
            "results": results,
            "runs": runs,
            "median_us": round(med, 1),
            "p90_us": round(percentile(&mut times, 90.0), 1),
            "median_us_parsed": round(med_parsed, 1),
        });
        let per_result = med / results.max(1) as f64;
        let per_result_parsed = med_parsed / results.max(1) as f64;
        let per_result_one = median(&mut one_times) / results.max(1) as f64;
        let scanned_per_sec = n as f64 / (med / 1e6);
        if indexed {
            line["us_per_result"] = round(per_result, 3);
            line["us_per_result_one_thread"] = round(per_result_one, 3);
            line["us_per_result_parsed"] = round(per_result_parsed, 3);
        } else {
            line["scanned"] = json!(n);
            line["scanned_per_sec"] = round(scanned_per_sec, 0);
            line["scanned_per_sec_parsed"] = round(n as f64 / (med_parsed / 1e6), 0);
        }
        eprintln!("  query {test}: {runs} runs");
        emit(line, ctx);
        let goal = match test {
            "indexed_eq_single" => Some(json!({
                "goal": "single_hit_lookup", "query": test, "p50_us": round(med, 1),
                "p50_us_parsed": round(med_parsed, 1),
                "goal_max_us": GOAL_SINGLE_HIT_US, "ok": med <= GOAL_SINGLE_HIT_US,
            })),
            "indexed_eq" => {
                let bare = median(&mut bare_times) / results.max(1) as f64;
                Some(json!({
                    "goal": "indexed_per_hit", "query": test, "results": results,
                    "us_per_result": round(per_result, 3),
                    "us_per_result_parsed": round(per_result_parsed, 3),
                    "bare_get_us": round(bare, 3),
                    "us_per_result_one_thread": round(per_result_one, 3),
                    "query_threads": query_threads(),
                    "bare_get_split_us": round(median(&mut split_bare_times) / results.max(1) as f64, 3),
                    "bare_get_each_us": round(median(&mut grouped_bare_times) / results.max(1) as f64, 3),
                    "per_result_over_bare_get": round(per_result / bare, 2),
                    "goal_max_us": GOAL_PER_HIT_US, "ok": per_result <= GOAL_PER_HIT_US,
                }))
            }
            "unindexed_eq" => Some(json!({
                "goal": "unindexed_scan", "query": test, "scanned_per_sec": round(scanned_per_sec, 0),
                "goal_min": GOAL_SCAN_PER_SEC, "ok": scanned_per_sec >= GOAL_SCAN_PER_SEC,
            })),
            _ => None,
        };
        if let Some(goal) = goal {
            emit(goal, ctx);
        }
    }
}
