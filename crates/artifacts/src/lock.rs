//! A lock per cache file shared by every process using the cache directory (another server,
//! `inferd pull`), so two processes never write the same `.part`. In-process callers are
//! already merged by the store's single flight; this covers the rest.
//!
//! The lock is `flock` on `<file>.lock`, removed when released. A waiter that wakes up holding
//! a lock file that was removed meanwhile tries again, so removal never lets two holders in.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::ArtifactError;

/// Held while a cache file is checked or downloaded; released (and its file removed) on drop.
#[derive(Debug)]
pub(crate) struct CacheLock {
    path: PathBuf,
    file: Option<File>,
}

impl CacheLock {
    /// Waits (on the blocking pool) until this process holds the lock of `file`.
    pub(crate) async fn acquire(file: &Path) -> Result<Self, ArtifactError> {
        let mut path = file.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let task_path = path.clone();
        tokio::task::spawn_blocking(move || Self::acquire_blocking(task_path))
            .await
            .map_err(|e| ArtifactError::Internal {
                source_url: path.display().to_string(),
                message: e.to_string(),
            })?
    }

    fn acquire_blocking(path: PathBuf) -> Result<Self, ArtifactError> {
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| ArtifactError::io("create lock file", &path, e))?;
            file.lock()
                .map_err(|e| ArtifactError::io("lock", &path, e))?;
            if still_linked(&file, &path) {
                return Ok(Self {
                    path,
                    file: Some(file),
                });
            }
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // Remove before unlocking: a waiter then sees its file unlinked and starts over.
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
    }
}

#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> bool {
    path.exists()
}
