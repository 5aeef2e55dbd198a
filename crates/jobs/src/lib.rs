//! The durable job queue behind inferd's OpenAI Batch and Files API: uploaded files, batches
//! and one queue entry per input line, kept either in an embedded `redb` database (one
//! process; a restart resumes a batch where it stopped) or in Redis, the lines on a Redis
//! Stream, so several processes share the work.
//!
//! [`JobQueue`] is what the server uses, over [`JobStore`] (embedded) or [`RedisStore`];
//! [`input`] checks an uploaded JSONL file line by line; [`records`] holds the stored shapes
//! (the public parts are OpenAI's File and Batch objects).

pub mod input;
mod queue;
pub mod records;
pub mod redis_store;
mod store;

pub use queue::{Claim, JobQueue};
pub use records::{
    batch_request_id, Batch, BatchStatus, FileObject, Line, LineResult, LineState, QueueDepth,
    RequestCounts, TraceFields,
};
pub use redis_store::RedisStore;
pub use store::{BatchPage, JobStore, NewBatch, JOBS_DB_FILE};

/// Why the job store failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The jobs directory could not be created.
    #[error("cannot create the jobs directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The database failed (I/O, locking, corruption).
    #[error("job store error: {0}")]
    Store(#[from] Box<redb::Error>),
    /// A stored record does not parse (written by an incompatible version).
    #[error("unreadable job record: {0}")]
    Record(#[from] serde_json::Error),
    /// Redis refused or could not be reached.
    #[error("redis job store error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A task running a store operation failed.
    #[error("job store task failed: {0}")]
    Task(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for JobsError {
            fn from(e: $t) -> Self {
                JobsError::Store(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
