//! The artifact store: turns a model's source (a local path, a `file://`, `http(s)://` or
//! `s3://` URL) into a verified file on local disk, downloading into a cache when needed.
//!
//! The model registry calls [`ArtifactStore::fetch`] in the context of its `model.load` span;
//! the store reports a check of a file on disk (cache hit, local file) or a download, with its
//! HTTP requests, to its [`StoreObserver`], which makes the spans and lines (the store makes
//! none itself). Downloads stream to a `.part` file while hashing, are checked
//! against the expected sha256, synced and renamed into place, so a crash or a cut connection
//! never leaves a file that looks complete. Concurrent fetches of one source share one
//! download. `inferd pull` is [`pull`].
#![warn(missing_docs)]

mod cache;
mod config;
mod digest;
mod error;
mod file;
mod http;
mod lock;
pub mod observe;
mod part;
mod progress;
mod pull;
mod s3;
mod source;
mod store;
mod transfer;

pub use cache::{Sidecar, PART_SUFFIX, SIDECAR_SUFFIX};
pub use config::{default_cache_dir, S3Config, StoreConfig};
pub use digest::Sha256Digest;
pub use error::ArtifactError;
pub use observe::StoreObserver;
pub use progress::Progress;
pub use pull::{pull, PullDisplay, PullOptions};
pub use source::{ArtifactSource, S3Location};
pub use store::{Artifact, ArtifactOrigin, ArtifactRequest, ArtifactStore};
