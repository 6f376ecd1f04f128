//! Writes valid encodings as seed inputs into `<dir>/<target>/seed-<n>` (default dir:
//! `corpus`, where `cargo fuzz run` looks). Run from `fuzz/`:
//! `cargo run --example seed_corpus [dir]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corpus".to_string()),
    );
    for (target, inputs) in threads_fuzz::seeds() {
        let target_dir = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&target_dir) {
            eprintln!("cannot create {}: {e}", target_dir.display());
            return ExitCode::FAILURE;
        }
        for (i, input) in inputs.iter().enumerate() {
            let path = target_dir.join(format!("seed-{i}"));
            if let Err(e) = std::fs::write(&path, input) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{target}: {} seed inputs", inputs.len());
    }
    ExitCode::SUCCESS
}
