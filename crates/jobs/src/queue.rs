//! [`JobQueue`]: the one interface the server uses, over either store: the embedded
//! [`JobStore`] (one process, a redb file) or the shared [`RedisStore`] (any number of
//! processes on one Redis). Every operation is async; the embedded store's run on a thread of
//! their own, since they write and sync to disk.

use std::sync::{Arc, OnceLock};

use crate::input::InputLine;
use crate::records::{Batch, FileObject, Line, LineResult, QueueDepth};
use crate::redis_store::{RedisStore, StreamLine};
use crate::store::{BatchPage, JobStore, NewBatch};
use crate::JobsError;

/// The job store in use; cheap to clone.
#[derive(Debug, Clone)]
pub enum JobQueue {
    Embedded(Arc<JobStore>),
    Redis(RedisStore),
}

/// A line a worker took, and how to tell its store it is done.
#[derive(Debug, Clone)]
pub enum Claim {
    Embedded(Line),
    Redis(StreamLine),
}

impl Claim {
    /// The line to run.
    pub fn line(&self) -> &Line {
        match self {
            Self::Embedded(line) => line,
            Self::Redis(claimed) => &claimed.line,
        }
    }

    /// Whether a worker took this line before and stopped without finishing it.
    pub fn retried(&self) -> bool {
        self.line().attempts > 1
    }
}

/// A call to run on the embedded store's thread.
type StoreCall = Box<dyn FnOnce() + Send>;

/// The thread every embedded-store call runs on, one after another (`inferd-jobs`). Its own
/// thread rather than tokio's blocking pool: the store's calls write and sync to disk, and
/// the blocking pool's threads carry the async workers' name, so an idle worker polling the
/// store would look like one more async worker.
fn store_thread() -> Result<&'static std::sync::mpsc::Sender<StoreCall>, JobsError> {
    static THREAD: OnceLock<Result<std::sync::mpsc::Sender<StoreCall>, String>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<StoreCall>();
            std::thread::Builder::new()
                .name("inferd-jobs".into())
                .spawn(move || {
                    for call in rx {
                        // A panicking call drops its answer channel, which its caller sees.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
                    }
                })
                .map(|_| tx)
                .map_err(|e| format!("cannot start the job store thread: {e}"))
        })
        .as_ref()
        .map_err(|e| JobsError::Task(e.clone()))
}

impl JobQueue {
    async fn blocking<T: Send + 'static>(
        store: &Arc<JobStore>,
        op: impl FnOnce(&JobStore) -> Result<T, JobsError> + Send + 'static,
    ) -> Result<T, JobsError> {
        let store = Arc::clone(store);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let call: StoreCall = Box::new(move || {
            let _ = answer.send(op(&store));
        });
        store_thread()?
            .send(call)
            .map_err(|_| JobsError::Task("the job store thread has stopped".into()))?;
        answered
            .await
            .map_err(|_| JobsError::Task("a job store call panicked".into()))?
    }

    /// Whether several processes share this store (then it is Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Whether [`JobQueue::claim_next`] itself waits a while for work when there is none
    /// (the Redis stream read blocks), so the worker need not sleep between tries.
    pub fn claim_waits(&self) -> bool {
        self.is_shared()
    }

    /// Stores a file; `owner` is the API key id it belongs to.
    pub async fn put_file(
        &self,
        purpose: &str,
        filename: &str,
        bytes: Vec<u8>,
        owner: Option<String>,
    ) -> Result<FileObject, JobsError> {
        match self {
            Self::Embedded(store) => {
                let (purpose, filename) = (purpose.to_owned(), filename.to_owned());
                Self::blocking(store, move |s| {
                    s.put_file(&purpose, &filename, &bytes, owner.as_deref())
                })
                .await
            }
            Self::Redis(store) => {
                store
                    .put_file(purpose, filename, &bytes, owner.as_deref())
                    .await
            }
        }
    }

    /// A file and its owner.
    pub async fn file(&self, id: &str) -> Result<Option<(FileObject, Option<String>)>, JobsError> {
        match self {
            Self::Embedded(store) => {
                let id = id.to_owned();
                Self::blocking(store, move |s| s.file(&id)).await
            }
            Self::Redis(store) => store.file(id).await,
        }
    }

    /// A file's bytes.
    pub async fn file_content(&self, id: &str) -> Result<Option<Vec<u8>>, JobsError> {
        match self {
            Self::Embedded(store) => {
                let id = id.to_owned();
                Self::blocking(store, move |s| s.file_content(&id)).await
            }
            Self::Redis(store) => store.file_content(id).await,
        }
    }

    /// Deletes a file; whether there was one.
    pub async fn delete_file(&self, id: &str) -> Result<bool, JobsError> {
        match self {
            Self::Embedded(store) => {
                let id = id.to_owned();
                Self::blocking(store, move |s| s.delete_file(&id)).await
            }
            Self::Redis(store) => store.delete_file(id).await,
        }
    }

    /// Every file of `owner` (all files when `None`), newest first.
    pub async fn files(&self, owner: Option<String>) -> Result<Vec<FileObject>, JobsError> {
        match self {
            Self::Embedded(store) => {
                Self::blocking(store, move |s| s.files(owner.as_deref())).await
            }
            Self::Redis(store) => store.files(owner.as_deref()).await,
        }
    }

    /// Creates a batch in progress and queues its lines.
    pub async fn create_batch(
        &self,
        new: NewBatch,
        lines: Vec<InputLine>,
    ) -> Result<Batch, JobsError> {
        match self {
            Self::Embedded(store) => {
                Self::blocking(store, move |s| s.create_batch(new, lines)).await
            }
            Self::Redis(store) => store.create_batch(new, lines).await,
        }
    }

    /// A batch and its owner.
    pub async fn batch(&self, id: &str) -> Result<Option<(Batch, Option<String>)>, JobsError> {
        match self {
            Self::Embedded(store) => {
                let id = id.to_owned();
                Self::blocking(store, move |s| s.batch(&id)).await
            }
            Self::Redis(store) => store.batch(id).await,
        }
    }

    /// Up to `limit` batches of `owner`, newest first, older than `after` when given.
    pub async fn batches(
        &self,
        owner: Option<String>,
        after: Option<String>,
        limit: usize,
    ) -> Result<BatchPage, JobsError> {
        match self {
            Self::Embedded(store) => {
                Self::blocking(store, move |s| {
                    s.batches(owner.as_deref(), after.as_deref(), limit)
                })
                .await
            }
            Self::Redis(store) => {
                store
                    .batches(owner.as_deref(), after.as_deref(), limit)
                    .await
            }
        }
    }

    /// Cancels a batch; `None`: no such batch.
    pub async fn cancel_batch(&self, id: &str) -> Result<Option<Batch>, JobsError> {
        match self {
            Self::Embedded(store) => {
                let id = id.to_owned();
                Self::blocking(store, move |s| s.cancel_batch(&id)).await
            }
            Self::Redis(store) => store.cancel_batch(id).await,
        }
    }

    /// How many lines wait and run, over every process sharing the queue.
    pub async fn depth(&self) -> Result<QueueDepth, JobsError> {
        match self {
            Self::Embedded(store) => Self::blocking(store, JobStore::depth).await,
            Self::Redis(store) => store.depth().await,
        }
    }

    /// Takes the next line to run, if any.
    pub async fn claim_next(&self) -> Result<Option<Claim>, JobsError> {
        match self {
            Self::Embedded(store) => Ok(Self::blocking(store, JobStore::claim_next)
                .await?
                .map(Claim::Embedded)),
            Self::Redis(store) => Ok(store.claim_next().await?.map(Claim::Redis)),
        }
    }

    /// Tells the store the worker still runs the line (Redis: so no other consumer takes
    /// it over); nothing for the embedded store.
    pub async fn keep_alive(&self, claim: &Claim) -> Result<(), JobsError> {
        match (self, claim) {
            (Self::Redis(store), Claim::Redis(claimed)) => store.keep_alive(claimed).await,
            _ => Ok(()),
        }
    }

    /// Gives back a line the worker will not finish (the server is stopping). Redis: another
    /// process takes it over at once, not after the visibility timeout; embedded: it is run
    /// again at the next start.
    pub async fn release(&self, claim: &Claim) -> Result<(), JobsError> {
        match (self, claim) {
            (Self::Redis(store), Claim::Redis(claimed)) => store.release(claimed).await,
            _ => Ok(()),
        }
    }

    /// Records a line's result once and ends its batch when it was the last.
    pub async fn finish_line(&self, claim: Claim, result: LineResult) -> Result<(), JobsError> {
        match (self, claim) {
            (Self::Embedded(store), Claim::Embedded(line)) => {
                Self::blocking(store, move |s| s.finish_line(&line, &result).map(|_| ())).await
            }
            (Self::Redis(store), Claim::Redis(claimed)) => {
                store.finish_line(&claimed, Some(&result)).await.map(|_| ())
            }
            _ => Err(JobsError::Task("a line finished on another store".into())),
        }
    }
}
