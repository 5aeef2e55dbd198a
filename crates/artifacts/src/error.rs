//! Why a model artifact could not be made available. Every message names the thing that
//! failed (source, path, digests) and, where it helps, what to do.

use std::path::PathBuf;
use std::sync::Arc;

/// An artifact store failure. Cloneable, so every caller sharing one download gets the error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArtifactError {
    /// The source string could not be parsed.
    #[error("invalid model source `{input}`: {reason}")]
    InvalidSource {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An expected sha256 that is not 64 hex characters.
    #[error("invalid sha256 `{value}`: expected 64 hex characters")]
    InvalidSha256 {
        /// What was given.
        value: String,
    },
    /// The source does not exist (local file missing, HTTP 404, no such S3 object).
    #[error("model source {source_url} not found{detail}")]
    NotFound {
        /// The source (no credentials).
        source_url: String,
        /// Extra detail, starting with `: ` when present.
        detail: String,
    },
    /// A file system operation failed (disk full, permissions, ...).
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        error: Arc<std::io::Error>,
    },
    /// The HTTP server answered with an error status.
    #[error("download of {url} failed: HTTP {status}")]
    HttpStatus {
        /// The URL (no credentials).
        url: String,
        /// The status code.
        status: u16,
    },
    /// The transfer failed (connect, TLS, reset, timeout, S3 error).
    #[error("download of {url} failed: {message}")]
    Transfer {
        /// The URL (no credentials).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The connection ended before the announced length arrived.
    #[error("download of {url} was cut short: received {received} of {expected} bytes{detail}")]
    Truncated {
        /// The URL (no credentials).
        url: String,
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        received: u64,
        /// The transport's own message, starting with `: ` when present.
        detail: String,
    },
    /// The file's sha256 is not the expected one.
    #[error("sha256 mismatch for {source_url}: expected {expected}, got {actual}{note}")]
    ChecksumMismatch {
        /// The source (no credentials).
        source_url: String,
        /// The configured digest.
        expected: String,
        /// The digest of what arrived (or is on disk).
        actual: String,
        /// What happened to the bytes, starting with `; ` when present.
        note: String,
    },
    /// Configuration that cannot work (e.g. no cache directory).
    #[error("artifact store configuration: {0}")]
    Config(String),
    /// A download task ended without an answer (it panicked or was cancelled).
    #[error("download task for {source_url} failed: {message}")]
    Internal {
        /// The source (no credentials).
        source_url: String,
        /// What happened.
        message: String,
    },
}

impl ArtifactError {
    /// A short, stable class for `error.type` on spans and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidSource { .. } => "invalid_source",
            Self::InvalidSha256 { .. } => "invalid_sha256",
            Self::NotFound { .. } => "artifact_not_found",
            Self::Io { .. } => "io",
            Self::HttpStatus { .. } => "http_status",
            Self::Transfer { .. } => "transfer",
            Self::Truncated { .. } => "truncated",
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::Config(_) => "config",
            Self::Internal { .. } => "internal",
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            error: Arc::new(error),
        }
    }
}
