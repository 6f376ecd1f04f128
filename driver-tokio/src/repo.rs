//! The repository folder of a node and its lock.
//!
//! Layout: `<repo>/db/` holds the LMDB environment (`data.mdb`, `lock.mdb`); `<repo>/threadsd.lock`
//! is held with an exclusive OS file lock while a node runs, so a second daemon on the same
//! repository stops with a clear message instead of sharing (LMDB itself would let two
//! processes in). The lock goes away with the process, even on `kill -9`.

use crate::node::NodeError;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the repository.
pub const LOCK_FILE: &str = "threadsd.lock";

/// An exclusive hold on a repository folder, released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
    path: PathBuf,
}

impl RepoLock {
    /// Creates the folder if needed and takes its lock, or says who holds it.
    pub fn acquire(repo: &Path) -> Result<RepoLock, NodeError> {
        let repo_err = |error: String| NodeError::Repo {
            repo: repo.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(repo).map_err(|e| repo_err(format!("cannot create it: {e}")))?;
        let path = repo.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| repo_err(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(NodeError::RepoLocked {
                    repo: repo.to_path_buf(),
                    lock: path,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(repo_err(format!("cannot lock {}: {e}", path.display())));
            }
        }
        Ok(RepoLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RepoLock::acquire(dir.path()).unwrap();
        let err = RepoLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, NodeError::RepoLocked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another threadsd"));
        drop(first);
        RepoLock::acquire(dir.path()).unwrap();
    }
}
