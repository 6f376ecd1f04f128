//! Writes the test vectors to `spec/vectors/*.json`.
//!
//! Run `cargo run -p threads-protocol --example gen_vectors` after an intended format change,
//! then review the diff: the `vectors` test fails until the files match the code again.

#[path = "../tests/vectors_gen/mod.rs"]
mod vectors_gen;

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = vectors_gen::vectors_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    for (name, value) in vectors_gen::all() {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, vectors_gen::render(&value)) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
