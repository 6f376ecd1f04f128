//! Filtering stored instances before parsing them: [`Prefilter`] reads only the top-level
//! members a filter looks at from an instance's JSON bytes, and evaluates the filter on them.
//!
//! A filter reads a document only through [`FieldPath::lookup`](crate::query::FieldPath::lookup), whose result depends only on
//! the top-level member named by the path's first segment; so a document holding just those
//! members (parsed from the same bytes) gives the same verdict as the whole one. Full scans
//! then parse only the instances that match, and rows of JSON text
//! ([`find_json`](crate::db::read::find_json)) none at all. The members are kept by name; the
//! filter reads them through [`Fields`], so no map of them is built.

use serde_json::Value;

use super::model::{FieldPath, Fields, Filter, ID_FIELD, Query};

/// The top-level members a query's filter reads, to evaluate it on raw instance bytes.
#[derive(Debug, Clone)]
pub struct Prefilter {
    members: Vec<String>,
    reads_id: bool,
}

/// What [`Prefilter::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The instance cannot match: skip it.
    Skip,
    /// The instance matches.
    Match,
    /// The bytes are not a JSON object the prefilter can read: parse the instance and check it
    /// in full.
    Parse,
}

fn collect(f: &Filter, out: &mut Vec<String>) {
    match f {
        Filter::True | Filter::False => {}
        Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| collect(p, out)),
        Filter::Not(inner) => collect(inner, out),
        Filter::Cmp { path, .. }
        | Filter::In { path, .. }
        | Filter::Exists { path, .. }
        | Filter::Indexable { path } => {
            let first = path.first_segment();
            if !out.iter().any(|m| m == first) {
                out.push(first.to_owned());
            }
        }
    }
}

/// Members a filter may read whose values [`Prefilter::check`] keeps on the stack (more are
/// kept in a `Vec`).
const INLINE_MEMBERS: usize = 4;

/// The members a filter reads, parsed from an instance's bytes (the rest is never built).
struct Members<'p> {
    names: &'p [String],
    /// The value of each of `names` (the last one, if a member repeats), `None` if absent.
    values: &'p [Option<Value>],
    /// The instance ID, when the filter reads `_id`.
    id: Option<Value>,
}

impl Fields for Members<'_> {
    fn field(&self, path: &FieldPath) -> Option<&Value> {
        let first = path.first_segment();
        let member = if first == ID_FIELD {
            self.id.as_ref()
        } else {
            let i = self.names.iter().position(|m| m == first)?;
            self.values[i].as_ref()
        };
        path.lookup_below(member?)
    }
}

impl Prefilter {
    /// The prefilter of `query`, or `None` when it would not save anything (a filter that
    /// reads nothing).
    pub fn new(query: &Query) -> Option<Prefilter> {
        if matches!(query.filter, Filter::True) {
            return None;
        }
        let mut members = Vec::new();
        collect(&query.filter, &mut members);
        let reads_id = members.iter().any(|m| m == ID_FIELD);
        members.retain(|m| m != ID_FIELD);
        Some(Prefilter { members, reads_id })
    }

    /// Whether the filter needs the instance ID (then `check` must get it).
    pub fn reads_id(&self) -> bool {
        self.reads_id
    }

    /// Evaluates `query`'s filter on the members of `bytes` it reads (`id`: the instance ID,
    /// needed when [`Self::reads_id`]); the same verdict as [`Query::matches`] on the parsed
    /// instance.
    pub fn check(&self, query: &Query, id: Option<&str>, bytes: &[u8]) -> Verdict {
        let n = self.members.len();
        let mut inline: [Option<Value>; INLINE_MEMBERS] = Default::default();
        let mut spilled: Vec<Option<Value>>;
        let values: &mut [Option<Value>] = if n <= INLINE_MEMBERS {
            &mut inline[..n]
        } else {
            spilled = vec![None; n];
            &mut spilled
        };
        let found = scan_object(bytes, &mut |key, value| match self
            .members
            .iter()
            .position(|m| m.as_bytes() == key)
        {
            Some(i) => match serde_json::from_slice::<Value>(value) {
                Ok(v) => {
                    values[i] = Some(v);
                    true
                }
                Err(_) => false,
            },
            None => true,
        });
        if found.is_none() {
            return Verdict::Parse;
        }
        let mut doc = Members {
            names: &self.members,
            values,
            id: None,
        };
        if self.reads_id {
            match id {
                Some(id) => doc.id = Some(Value::String(id.to_owned())),
                None => return Verdict::Parse,
            }
        }
        if query.filter.eval_fields(&doc) {
            Verdict::Match
        } else {
            Verdict::Skip
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string starting at `b[i] == '"'`, and whether it has escapes.
fn skip_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    while j < b.len() {
        match b[j] {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the value starting at `b[i]`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Calls `member` with each top-level member (key with escapes resolved, raw value bytes) of
/// the JSON object in `b`, until it returns false. `None` when `b` does not look like an object
/// or `member` gave up (values are only delimited here, not validated: the caller parses those
/// it uses; a key is compared as bytes, so one that is not UTF-8 simply matches no name).
fn scan_object(b: &[u8], member: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Option<()> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    let mut unescaped: String;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = skip_string(b, i)?;
        let key: &[u8] = if escaped {
            unescaped = serde_json::from_slice(&b[i..end]).ok()?;
            unescaped.as_bytes()
        } else {
            &b[i + 1..end - 1]
        };
        i = skip_ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vend = skip_value(b, i)?;
        if !member(key, &b[i..vend]) {
            return None;
        }
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdicts(q: Value, docs: &[Value]) {
        let query = Query::from_json(&q).unwrap();
        let pre = Prefilter::new(&query).unwrap();
        for doc in docs {
            let bytes = serde_json::to_vec(doc).unwrap();
            let want = query.matches("k1", doc);
            let got = pre.check(&query, Some("k1"), &bytes) == Verdict::Match;
            assert_eq!(got, want, "{q} on {doc}");
            let pretty = serde_json::to_vec_pretty(doc).unwrap();
            let got = pre.check(&query, Some("k1"), &pretty) == Verdict::Match;
            assert_eq!(got, want, "{q} on pretty {doc}");
        }
    }

    #[test]
    fn same_verdict_as_full_parse() {
        let docs = [
            json!({"_id": "k1", "a": 1, "b": "x\"y\\\\", "c": {"d": [1, {"e": "}"}]}, "f": null}),
            json!({"_id": "k1", "a": 2, "a\\u0041": 3, "c": {"d": 5}}),
            json!({"_id": "other", "a": "1", "b": [], "c": {}}),
            json!({}),
            json!({"a\"": 1, "é": true}),
        ];
        for q in [
            json!({"a": 1}),
            json!({"a": {"$gte": 1, "$lt": 3}}),
            json!({"c.d": 5}),
            json!({"b": {"$exists": false}}),
            json!({"$or": [{"a": 2}, {"f": null}]}),
            json!({"_id": "k1", "a": {"$ne": 2}}),
            json!({"é": true}),
            json!({"a\"": 1}),
            // More members than are kept on the stack.
            json!({"$or": [{"a": 2}, {"b": []}, {"c.d": 5}, {"f": null}, {"é": true}]}),
        ] {
            verdicts(q, &docs);
        }
    }

    #[test]
    fn a_repeated_member_counts_as_its_last_value_as_in_a_full_parse() {
        for (q, bytes) in [
            (json!({"a": 2}), &br#"{"a":1,"b":0,"a":2}"#[..]),
            (json!({"a": 1}), br#"{"a":1,"b":0,"a":2}"#),
            (json!({"a.b": 1}), br#"{"a":{"b":1},"a":{"c":1}}"#),
        ] {
            let query = Query::from_json(&q).unwrap();
            let pre = Prefilter::new(&query).unwrap();
            let doc: Value = serde_json::from_slice(bytes).unwrap();
            let want = if query.matches("k1", &doc) {
                Verdict::Match
            } else {
                Verdict::Skip
            };
            assert_eq!(pre.check(&query, None, bytes), want, "{q} on {bytes:?}");
        }
    }

    #[test]
    fn odd_bytes_are_parsed_in_full() {
        let query = Query::from_json(&json!({"a": 1})).unwrap();
        let pre = Prefilter::new(&query).unwrap();
        for bytes in [
            &b"[1]"[..],
            b"{",
            b"{\"a\":",
            b"{\"a\":1",
            b"{\"a\":1}x",
            b"",
            b"{\"a\" 1}",
        ] {
            assert_eq!(pre.check(&query, None, bytes), Verdict::Parse, "{bytes:?}");
        }
    }
}
