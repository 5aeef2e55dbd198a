//! The cache directory's layout and its sidecar files.
//!
//! `CACHE/<source path>` is a complete, verified download; `<file>.meta.json` (the sidecar)
//! records its source, size and sha256 and is written only after the file was synced and
//! renamed into place, so a file without a sidecar is never trusted. `<file>.part` is a
//! download in progress (or an interrupted one that can be resumed; `<file>.part.meta.json`
//! then holds the server's validator).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::digest::Sha256Digest;
use crate::ArtifactError;

/// Suffix of the metadata file written beside each cached file.
pub const SIDECAR_SUFFIX: &str = ".meta.json";
/// Suffix of a download in progress.
pub const PART_SUFFIX: &str = ".part";

/// What the cache knows about a cached file (the sidecar's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The source it was downloaded from (no credentials).
    pub source: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content, computed while downloading.
    pub sha256: Sha256Digest,
    /// When the download finished (RFC 3339, UTC).
    pub fetched_at: String,
    /// The server's ETag, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Validator of an interrupted download, so it is resumed only against the same object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartMeta {
    /// ETag (preferred) or Last-Modified of the response the part came from.
    pub validator: String,
    /// Total size announced by the server.
    pub total: Option<u64>,
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(crate) fn sidecar_path(file: &Path) -> PathBuf {
    with_suffix(file, SIDECAR_SUFFIX)
}

pub(crate) fn part_path(file: &Path) -> PathBuf {
    with_suffix(file, PART_SUFFIX)
}

pub(crate) fn part_meta_path(file: &Path) -> PathBuf {
    with_suffix(&part_path(file), SIDECAR_SUFFIX)
}

/// Result of looking a file up in the cache.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Present and matching its sidecar (and the expected digest, when given).
    Hit(Sidecar),
    /// Not there (or not trustworthy); `reason` says why when something was there.
    Miss { reason: Option<String> },
}

/// Checks `file` against its sidecar: same size, and the sidecar's digest equals `expected`
/// when one is given. With `rehash`, the content is hashed again too.
pub(crate) async fn lookup(
    file: &Path,
    expected: Option<&Sha256Digest>,
    rehash: bool,
) -> Result<Lookup, ArtifactError> {
    let meta = match tokio::fs::metadata(file).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Lookup::Miss { reason: None })
        }
        Err(e) => return Err(ArtifactError::io("read", file, e)),
    };
    let miss = |reason: String| {
        Ok(Lookup::Miss {
            reason: Some(reason),
        })
    };
    let sidecar = match read_json::<Sidecar>(&sidecar_path(file)).await {
        Some(s) => s,
        None => return miss("no readable sidecar".into()),
    };
    if sidecar.size != meta.len() {
        return miss(format!(
            "size {} differs from the recorded {}",
            meta.len(),
            sidecar.size
        ));
    }
    if let Some(expected) = expected {
        if *expected != sidecar.sha256 {
            return miss(format!(
                "recorded sha256 {} is not the expected {expected}",
                sidecar.sha256
            ));
        }
    }
    if rehash {
        let actual = hash_file(file).await?;
        if actual != sidecar.sha256 {
            return miss(format!(
                "content hashes to {actual}, recorded {}",
                sidecar.sha256
            ));
        }
    }
    Ok(Lookup::Hit(sidecar))
}

/// Removes a cached file and its sidecar (missing files are fine).
pub(crate) async fn evict(file: &Path) -> Result<(), ArtifactError> {
    remove_if_exists(&sidecar_path(file)).await?;
    remove_if_exists(file).await
}

pub(crate) async fn remove_if_exists(path: &Path) -> Result<(), ArtifactError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArtifactError::io("remove", path, e)),
    }
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes JSON next to its final name, syncs it and renames it into place.
pub(crate) async fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ArtifactError> {
    let tmp = with_suffix(path, ".tmp");
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| ArtifactError::io("encode", path, std::io::Error::other(e)))?;
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| ArtifactError::io("create", &tmp, e))?;
    file.write_all(&bytes)
        .await
        .map_err(|e| ArtifactError::io("write", &tmp, e))?;
    file.sync_all()
        .await
        .map_err(|e| ArtifactError::io("sync", &tmp, e))?;
    drop(file);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| ArtifactError::io("rename into", path, e))?;
    sync_parent(path).await
}

/// Syncs the directory holding `path`, so a rename survives a crash.
pub(crate) async fn sync_parent(path: &Path) -> Result<(), ArtifactError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        match std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            Err(e) => Err(ArtifactError::io("sync directory", dir, e)),
        }
    })
    .await
    .unwrap_or(Ok(()))
}

/// sha256 of a whole file, read on the blocking pool.
pub(crate) async fn hash_file(path: &Path) -> Result<Sha256Digest, ArtifactError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut file =
            std::fs::File::open(&owned).map_err(|e| ArtifactError::io("open", &owned, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ArtifactError::io("read", &owned, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Sha256Digest::from_hasher(hasher))
    })
    .await
    .map_err(|e| ArtifactError::Internal {
        source_url: path.display().to_string(),
        message: e.to_string(),
    })?
}

/// Now as RFC 3339 UTC with seconds, e.g. `2026-11-25T14:48:00Z`.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    inferd_otel::rfc3339_seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(inferd_otel::rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            inferd_otel::rfc3339_seconds(951_782_400),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            inferd_otel::rfc3339_seconds(1_795_617_296),
            "2026-11-25T14:34:56Z"
        );
    }

    #[test]
    fn sidecar_and_part_names_sit_beside_the_file() {
        let f = Path::new("/c/http/h/m.gguf");
        assert_eq!(sidecar_path(f), Path::new("/c/http/h/m.gguf.meta.json"));
        assert_eq!(part_path(f), Path::new("/c/http/h/m.gguf.part"));
        assert_eq!(
            part_meta_path(f),
            Path::new("/c/http/h/m.gguf.part.meta.json")
        );
    }
}
