//! The `threads` binary against an in-process node and API server: a scenario through every
//! DB command, a listener stopping after one change, tokens, the Net API, and bad input (each
//! a non-zero exit with one `threads: …` line on stderr).

mod common;

use common::{STEP, Server};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Output, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn threads(api: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_threads"));
    c.arg("--api")
        .arg(api)
        .env_remove("THREADS_API")
        .env_remove("THREADS_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs `threads --api <api> <args>` to its end (bounded).
async fn run(api: &str, args: &[&str]) -> Output {
    let out = threads(api).args(args).output();
    tokio::time::timeout(STEP, out)
        .await
        .unwrap_or_else(|_| panic!("threads {args:?} did not finish"))
        .expect("the binary runs")
}

/// Runs a command that must succeed with `--json`, and parses its output.
async fn ok_json(api: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(api, &all).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "threads {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "threads {args:?}: output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a command that must fail; returns its one stderr line.
#[track_caller]
fn failed(out: &Output, what: &str, expect: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{what} should fail");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one stderr line, got {stderr:?}");
    assert!(lines[0].starts_with("threads: "), "{what}: {stderr:?}");
    assert!(
        lines[0].contains(expect),
        "{what}: {stderr:?} should contain {expect:?}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_scenario() {
    let server = Server::start().await;
    let api = server.url();
    let api = api.as_str();
    let files = tempfile::tempdir().unwrap();

    // Databases and collections.
    let db = ok_json(api, &["db", "new", "--name", "people"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let schema = write(
        files.path(),
        "schema.json",
        r#"{"type":"object","properties":{"_id":{"type":"string"},"name":{"type":"string"},
            "email":{"type":"string"},"age":{"type":"integer"}},"required":["name"]}"#,
    );
    let out = run(
        api,
        &[
            "collection",
            "new",
            &db,
            "people",
            "--schema",
            &schema,
            "--index",
            "email:unique",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let info = ok_json(api, &["collection", "info", &db, "people"]).await;
    assert_eq!(info["indexes"], json!([{"path": "email", "unique": true}]));
    assert_eq!(info["schema"]["required"], json!(["name"]));
    let list = ok_json(api, &["collection", "list", &db]).await;
    assert_eq!(list[0]["name"], "people");

    // Instances: inline and from a file.
    let ada = ok_json(
        api,
        &[
            "instance",
            "create",
            &db,
            "people",
            r#"{"name":"Ada","email":"ada@x.org","age":36}"#,
        ],
    )
    .await["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let bob_file = write(
        files.path(),
        "bob.json",
        r#"[{"name":"Bob","email":"bob@x.org","age":17}]"#,
    );
    let bob = ok_json(
        api,
        &["instance", "create", &db, "people", &format!("@{bob_file}")],
    )
    .await["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let adults = ok_json(
        api,
        &[
            "instance",
            "find",
            &db,
            "people",
            r#"{"ands":[{"fieldPath":"age","operation":4,"value":{"float":18}}]}"#,
        ],
    )
    .await;
    assert_eq!(adults.as_array().unwrap().len(), 1);
    assert_eq!(adults[0]["_id"], ada.as_str());
    let got = ok_json(api, &["instance", "get", &db, "people", &ada]).await;
    assert_eq!(got["name"], "Ada");
    // Human output of get is the pretty JSON.
    let out = run(api, &["instance", "get", &db, "people", &bob]).await;
    let human: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(human["name"], "Bob");

    let saved = json!({"_id": ada, "name": "Ada L.", "email": "ada@x.org", "age": 37}).to_string();
    ok_json(api, &["instance", "save", &db, "people", &saved]).await;
    assert_eq!(
        ok_json(api, &["instance", "get", &db, "people", &ada]).await["name"],
        "Ada L."
    );
    ok_json(api, &["instance", "delete", &db, "people", &ada]).await;
    let all = ok_json(api, &["instance", "find", &db, "people"]).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        (&all[0]["_id"], &all[0]["name"]),
        (&json!(bob), &json!("Bob"))
    );

    // Database listing and info.
    let dbs = ok_json(api, &["db", "list"]).await;
    let mine = dbs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == db.as_str())
        .expect("the db is listed");
    assert_eq!(mine["name"], "people");
    let info = ok_json(api, &["db", "info", &db]).await;
    assert!(info["key"].as_str().unwrap().len() > 50);
    let addr = info["addrs"][0].as_str().unwrap().to_string();
    assert!(addr.contains("/thread/"), "{addr}");
    let out = run(api, &["db", "list"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&db));

    // A listener that stops after one change: it announces itself on stderr once registered.
    let mut listener = threads(api)
        .args([
            "--json",
            "listen",
            &db,
            "--collection",
            "people",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(listener.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(STEP, stderr.next_line())
        .await
        .expect("the listener starts in time")
        .unwrap()
        .expect("a line");
    assert!(line.contains("listening"), "{line}");
    let cy = ok_json(
        api,
        &[
            "instance",
            "create",
            &db,
            "people",
            r#"{"name":"Cy","email":"cy@x.org"}"#,
        ],
    )
    .await["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = tokio::time::timeout(STEP, listener.wait_with_output())
        .await
        .expect("the listener ends after one change")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let change: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(change["action"], "create");
    assert_eq!(change["collection"], "people");
    assert_eq!(change["instance_id"], cy.as_str());
    assert_eq!(change["instance"]["name"], "Cy");

    // Tokens: a new identity saved to a file, then the same identity from the file.
    let key_file = files.path().join("me.key");
    let key_path = key_file.to_str().unwrap();
    let first = ok_json(api, &["token", "--new-identity", key_path]).await;
    let token = first["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3);
    let again = ok_json(api, &["token", key_path]).await;
    assert_eq!(again["identity"], first["identity"]);
    let out = run(api, &["token", "--new-identity", key_path]).await;
    failed(&out, "overwriting an identity", "cannot create");
    let out = run(
        api,
        &[
            "--token",
            &token,
            "instance",
            "create",
            &db,
            "people",
            r#"{"name":"Dee"}"#,
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    // The token through the environment.
    let out = threads(api)
        .env("THREADS_TOKEN", "not-a-token")
        .args(["db", "list"])
        .output()
        .await
        .unwrap();
    failed(&out, "a bad token", "thread token not found");

    // Net API.
    let host = ok_json(api, &["net", "host-id"]).await["hostId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(addr.contains(&host), "{addr} names {host}");
    let thread = ok_json(api, &["net", "thread", &db]).await;
    assert_eq!(thread["id"], db.as_str());
    assert!(!thread["logs"].as_array().unwrap().is_empty());
    ok_json(api, &["net", "pull", &db]).await;
    let out = run(api, &["net", "add-replicator", &db, "/ip4/127.0.0.1/tcp/1"]).await;
    failed(&out, "a replicator without /p2p", "p2p");

    // Delete the database.
    ok_json(api, &["db", "delete", &db]).await;
    let out = run(api, &["db", "info", &db]).await;
    failed(&out, "info of a deleted db", "thread not found");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bad_input() {
    let server = Server::start().await;
    let api = server.url();
    let api = api.as_str();
    let db = ok_json(api, &["db", "new"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let files = tempfile::tempdir().unwrap();
    let schema = write(
        files.path(),
        "s.json",
        r#"{"properties":{"_id":{"type":"string"},"code":{"type":"string"}}}"#,
    );
    ok_json(
        api,
        &[
            "collection",
            "new",
            &db,
            "things",
            "--schema",
            &schema,
            "--index",
            "code:unique",
        ],
    )
    .await;
    let bad_schema = write(files.path(), "bad.json", "{");
    let out = run(
        api,
        &["collection", "new", &db, "y", "--schema", &bad_schema],
    )
    .await;
    failed(&out, "an unparsable schema file", "invalid JSON in");

    let out = run(api, &["instance", "get", "not-an-id", "things", "x"]).await;
    failed(&out, "a bad db id", "invalid id \"not-an-id\"");
    let out = run(api, &["instance", "create", &db, "things", "{not json"]).await;
    failed(&out, "unparsable JSON", "invalid JSON in the instance");
    let out = run(
        api,
        &[
            "instance",
            "create",
            &db,
            "things",
            "@/nonexistent/file.json",
        ],
    )
    .await;
    failed(&out, "a missing file", "cannot read /nonexistent/file.json");
    let out = run(api, &["instance", "find", &db, "nosuch"]).await;
    failed(&out, "an unknown collection", "collection not found");
    let out = run(api, &["instance", "find", &db, "things", "[1]"]).await;
    failed(&out, "a query that is not an object", "invalid query");
    let out = run(api, &["instance", "get", &db, "things", "nosuch"]).await;
    failed(&out, "an unknown instance", "NotFound");
    ok_json(
        api,
        &["instance", "create", &db, "things", r#"{"code":"a"}"#],
    )
    .await;
    let out = run(
        api,
        &["instance", "create", &db, "things", r#"{"code":"a"}"#],
    )
    .await;
    failed(&out, "a unique index violation", "unique constraint");
    let out = run(api, &["instance", "save", &db, "things", r#"{"code":"b"}"#]).await;
    failed(&out, "a save without _id", "_id");
    let out = run(api, &["collection", "new", &db, "x", "--index", "a:uniq"]).await;
    failed(&out, "a bad index", "invalid index");
    let out = run(api, &["db", "join", "/ip4/1.2.3.4/tcp/1", "key"]).await;
    failed(&out, "a bad thread address", "invalid thread address");
    let out = run(api, &["token", "/nonexistent/key"]).await;
    failed(&out, "a missing identity file", "cannot read");
    let out = run(api, &["listen", "nope"]).await;
    failed(&out, "listening to a bad id", "invalid id");

    // Usage errors: one line too, exit status 2.
    let out = run(api, &["db", "frobnicate"]).await;
    failed(&out, "an unknown subcommand", "frobnicate");
    assert_eq!(out.status.code(), Some(2));
    let out = run(api, &["token"]).await;
    failed(&out, "token without a key file", "required");

    // An API nobody serves: a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{port}");
    let out = run(&closed, &["db", "list"]).await;
    failed(
        &out,
        "an unreachable API",
        "cannot connect to http://127.0.0.1:",
    );
    let out = run("/ip4/1.2.3.4/udp/9", &["db", "list"]).await;
    failed(&out, "a bad API address", "invalid API address");

    server.stop().await;
}
