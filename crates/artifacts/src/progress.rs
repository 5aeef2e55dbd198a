//! Download progress, for `inferd pull`'s progress bar and anyone else who wants to watch.

/// How far a download is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk so far (including a resumed part).
    pub done: u64,
    /// Total size, when the server announced it.
    pub total: Option<u64>,
}
