//! What every downloader shares: the job description and the loop that streams a body into a
//! `.part` file, reports progress and decides what a failure leaves behind.

use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use crate::cache::{self, part_meta_path};
use crate::digest::Sha256Digest;
use crate::observe::Download;
use crate::part::PartWriter;
use crate::{ArtifactError, Progress};

/// One download into the cache.
#[derive(Debug)]
pub(crate) struct Job<'a> {
    /// The final, complete file.
    pub dest: &'a Path,
    pub expected: Option<&'a Sha256Digest>,
    /// The source as it may be shown (no credentials).
    pub source_url: &'a str,
    pub progress: &'a watch::Sender<Progress>,
    /// What the download reports to the store's observer (its requests, a resume).
    pub download: &'a Download,
}

/// A finished, verified download.
#[derive(Debug)]
pub(crate) struct Downloaded {
    pub bytes: u64,
    pub sha256: Sha256Digest,
    pub etag: Option<String>,
}

/// Streams `body` into `writer`; `total` is the announced size of the whole file. When the
/// body fails or falls short, the part is kept if `resumable`, deleted otherwise, and the
/// error says how many bytes arrived. A complete body is verified and renamed to `job.dest`.
pub(crate) async fn stream_to_part<S, E>(
    mut writer: PartWriter,
    body: S,
    total: Option<u64>,
    resumable: bool,
    job: &Job<'_>,
    etag: Option<String>,
) -> Result<Downloaded, ArtifactError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error,
{
    let mut body = std::pin::pin!(body);
    let mut failure: Option<String> = None;
    job.progress.send_replace(Progress {
        done: writer.written(),
        total,
    });
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                if let Err(e) = writer.write(&chunk).await {
                    // Disk full or similar: free the space rather than keep a part.
                    let _ = writer.discard().await;
                    let _ = cache::remove_if_exists(&part_meta_path(job.dest)).await;
                    return Err(e);
                }
                job.progress.send_replace(Progress {
                    done: writer.written(),
                    total,
                });
            }
            Err(e) => {
                failure = Some(error_chain(&e));
                break;
            }
        }
    }
    let received = writer.written();
    let short = total.is_some_and(|t| received < t);
    if failure.is_some() || short {
        if resumable && received > 0 {
            writer.keep().await?;
        } else {
            writer.discard().await?;
            cache::remove_if_exists(&part_meta_path(job.dest)).await?;
        }
        let detail = failure
            .as_deref()
            .map(|f| format!(": {f}"))
            .unwrap_or_default();
        return Err(match total {
            Some(expected) => ArtifactError::Truncated {
                url: job.source_url.to_owned(),
                expected,
                received,
                detail,
            },
            None => ArtifactError::Transfer {
                url: job.source_url.to_owned(),
                message: format!("connection failed after {received} bytes{detail}"),
            },
        });
    }
    if let Some(expected) = total.filter(|t| received > *t) {
        writer.discard().await?;
        return Err(ArtifactError::Transfer {
            url: job.source_url.to_owned(),
            message: format!("received {received} bytes, more than the announced {expected}"),
        });
    }
    let committed = writer.commit(job.dest, job.expected, job.source_url).await;
    cache::remove_if_exists(&part_meta_path(job.dest)).await?;
    let (bytes, sha256) = committed?;
    Ok(Downloaded {
        bytes,
        sha256,
        etag,
    })
}

/// An error and its causes, `: `-joined (reqwest's own message alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
