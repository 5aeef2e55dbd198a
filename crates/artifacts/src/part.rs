//! A download in progress: bytes go to `<file>.part` and through sha256 as they arrive; only
//! a synced, verified part is renamed to its final name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use crate::cache::{self, sync_parent};
use crate::digest::Sha256Digest;
use crate::ArtifactError;

const WRITE_BUFFER: usize = 1 << 20;

/// Writer of one `.part` file.
#[derive(Debug)]
pub(crate) struct PartWriter {
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    hasher: Sha256,
    written: u64,
}

impl PartWriter {
    /// Starts an empty part (an older one is overwritten).
    pub(crate) async fn create(path: &Path) -> Result<Self, ArtifactError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| ArtifactError::io("create", path, e))?;
        Ok(Self {
            path: path.to_owned(),
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Continues an existing part: its bytes are hashed first, new bytes are appended.
    pub(crate) async fn resume(path: &Path) -> Result<Self, ArtifactError> {
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| ArtifactError::io("open", path, e))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut buf = vec![0u8; WRITE_BUFFER];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| ArtifactError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        Ok(Self {
            path: path.to_owned(),
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher,
            written,
        })
    }

    /// Bytes in the part so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ArtifactError::io("write", &self.path, e))?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Flushes and syncs what was written, keeping the part for a later resume.
    pub(crate) async fn keep(mut self) -> Result<(), ArtifactError> {
        self.flush_and_sync().await
    }

    /// Deletes the part.
    pub(crate) async fn discard(self) -> Result<(), ArtifactError> {
        drop(self.file);
        cache::remove_if_exists(&self.path).await
    }

    /// Syncs the part, checks its digest against `expected` (a mismatch deletes it) and
    /// renames it to `dest`. Returns the size and digest.
    pub(crate) async fn commit(
        mut self,
        dest: &Path,
        expected: Option<&Sha256Digest>,
        source_url: &str,
    ) -> Result<(u64, Sha256Digest), ArtifactError> {
        self.flush_and_sync().await?;
        let actual = Sha256Digest::from_hasher(self.hasher.clone());
        if let Some(expected) = expected {
            if *expected != actual {
                let path = self.path.clone();
                self.discard().await?;
                return Err(ArtifactError::ChecksumMismatch {
                    source_url: source_url.to_owned(),
                    expected: expected.to_hex(),
                    actual: actual.to_hex(),
                    note: format!("; the download was deleted ({})", path.display()),
                });
            }
        }
        let written = self.written;
        drop(self.file);
        tokio::fs::rename(&self.path, dest)
            .await
            .map_err(|e| ArtifactError::io("rename into", dest, e))?;
        sync_parent(dest).await?;
        Ok((written, actual))
    }

    async fn flush_and_sync(&mut self) -> Result<(), ArtifactError> {
        self.file
            .flush()
            .await
            .map_err(|e| ArtifactError::io("write", &self.path, e))?;
        self.file
            .get_mut()
            .sync_all()
            .await
            .map_err(|e| ArtifactError::io("sync", &self.path, e))
    }
}
