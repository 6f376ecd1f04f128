//! Crash safety: a writer process is killed with SIGKILL at random moments, again and again, on
//! one repository. Every write it acknowledged must be there afterwards, and the repository
//! must still sync to a peer.
//!
//! The writer's write-ahead log is small ([`LOG_BYTES`]): its halves fill up every few writes,
//! so kills also land while a background checkpoint writes a half into LMDB and while the
//! first commit after a restart checkpoints the frames read back.
//!
//! `KILL9_ROUNDS` sets the number of kills (default 200); `scripts/kill9.sh` runs a longer
//! campaign. The seed of the kill moments is printed (`KILL9_SEED` replays it).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;

/// A small deterministic generator for kill moments (xorshift64*).
struct Moments(u64);

impl Moments {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

/// The writer's log: 32 KiB halves, a few document writes each.
const LOG_BYTES: u64 = 64 << 10;

/// One writer life: returns the DB line (if printed) and the acknowledged ids.
fn run_and_kill(repo: &std::path::Path, moments: &mut Moments) -> (Option<String>, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_threads-crash-writer"))
        .arg("--repo")
        .arg(repo)
        .arg("--log-bytes")
        .arg(LOG_BYTES.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Kill after a random number of acknowledgements (0 = possibly before or during start-up),
    // plus a random delay of up to 15 ms so kills land inside commits too.
    let acks_before_kill = moments.next(6);
    let delay = Duration::from_micros(moments.next(15_000));
    let mut db_line = None;
    let mut acked = Vec::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen < acks_before_kill && std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("DB ") => db_line = Some(line),
            Ok(line) => {
                if let Some(id) = line.strip_prefix("ACK ") {
                    acked.push(id.to_owned());
                    seen += 1;
                }
            }
            Err(_) => break,
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().unwrap();
    // Lines printed before the kill are acknowledgements too.
    for line in rx.try_iter() {
        if line.starts_with("DB ") {
            db_line = Some(line);
        } else if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_owned());
        }
    }
    (db_line, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_the_repository_still_syncs() {
    let rounds: usize = std::env::var("KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill -9 campaign: {rounds} kills, KILL9_SEED={seed}");
    let repo = tempfile::tempdir().unwrap();
    let mut moments = Moments(seed);
    let mut db_line = None;
    let mut acked = Vec::new();
    let repo_path = repo.path().to_path_buf();
    let (db_line_out, acked_out) = tokio::task::spawn_blocking(move || {
        for _ in 0..rounds {
            let (line, ids) = run_and_kill(&repo_path, &mut moments);
            if line.is_some() {
                db_line = line;
            }
            acked.extend(ids);
        }
        (db_line, acked)
    })
    .await
    .unwrap();
    let db_line = db_line_out.expect("the writer announced its database at least once");
    let mut parts = db_line.split_whitespace().skip(1);
    let db: ThreadId = parts.next().unwrap().parse().unwrap();
    let key: ThreadKey = parts.next().unwrap().parse().unwrap();
    println!(
        "{} writes acknowledged across {rounds} kills",
        acked_out.len()
    );
    assert!(
        acked_out.len() >= rounds / 3,
        "the writer made progress between kills"
    );

    // Every acknowledged write is there.
    let a = start(repo.path()).await;
    let ha = a.handle();
    let mut missing = Vec::new();
    for id in &acked_out {
        if ha.reader().get(db, "people", id, None).await.is_err() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {missing:?}",
        missing.len()
    );
    let total = all_people(&ha, db).await.len();
    assert!(total >= acked_out.len());

    // And the repository still syncs to a fresh peer.
    let dir_b = tempfile::tempdir().unwrap();
    let b = start(dir_b.path()).await;
    let hb = b.handle();
    hb.join(ha.thread_addrs(db).await.unwrap().remove(0), key)
        .await
        .unwrap();
    eventually(
        "a fresh peer catches up with the crashed repository",
        CONVERGE_WITHIN,
        || converged(vec![ha.clone(), hb.clone()], db, total),
    )
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
