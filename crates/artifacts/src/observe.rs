//! What the store reports as it works, as typed events to a [`StoreObserver`]: a file checked
//! on local disk, a download with its HTTP requests, a cached file found unusable. The store
//! makes no span and writes no line itself; an observer makes them (inferd's server registers
//! one that makes the `model.artifacts.load` and `model.artifacts.download` spans, the CLIENT
//! spans of HTTP downloads and their lines). Without an observer nothing is reported.
//!
//! Each operation with a duration is a call: the observer's `*_started` hands back a call
//! object (or `None` to ignore it) that hears what happens and `finished`; a call may give the
//! [`Context`] the operation's work runs in (what outgoing requests carry as `traceparent`).

use std::path::Path;
use std::sync::Arc;

use opentelemetry::Context;

use crate::{Artifact, ArtifactError, ArtifactRequest};

/// Hears what an [`ArtifactStore`](crate::ArtifactStore) does. Every method has a default
/// that ignores the event.
pub trait StoreObserver: Send + Sync + std::fmt::Debug {
    /// A file on local disk is checked: a local path (its size, and its digest when one is
    /// expected), or a cached copy that was found (or could not be read).
    fn check_started(&self, _started: &Started<'_>) -> Option<Box<dyn CheckCall>> {
        None
    }

    /// A file is downloaded into the cache (or copied there from a `file://` URL).
    fn download_started(&self, _started: &Started<'_>) -> Option<Box<dyn DownloadCall>> {
        None
    }

    /// A caller joined the fetch of `path` that another caller started.
    fn fetch_joined(&self, _path: &Path) {}

    /// The cached copy at `path` failed its check (`reason`) and is fetched again.
    fn cached_copy_rejected(&self, _path: &Path, _reason: &str) {}
}

/// A check or a download begins.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// What is fetched (model id, source, expected digest).
    pub request: &'a ArtifactRequest,
    /// The context of the caller (the registry's `model.load`): the operation's parent.
    pub parent: &'a Context,
}

/// What an operation's call hears when it ends.
pub type Outcome<'a> = Result<&'a Artifact, &'a ArtifactError>;

/// A check of a file on local disk; see [`StoreObserver::check_started`].
pub trait CheckCall: Send + Sync {
    /// The file is usable (`Ok`, with its size and origin) or not.
    fn finished(self: Box<Self>, outcome: Outcome<'_>);
}

/// A download; see [`StoreObserver::download_started`].
pub trait DownloadCall: Send + Sync {
    /// The context the download's work runs in; the caller's when `None`.
    fn context(&self) -> Option<&Context> {
        None
    }

    /// An HTTP request of the download starts (a first attempt, or a resume); the call's
    /// context (else the download's) is sent in the request's headers.
    fn request_started(&self, _request: &HttpRequest<'_>) -> Option<Box<dyn RequestCall>> {
        None
    }

    /// An interrupted download continues from `offset` bytes.
    fn resuming(&self, _offset: u64, _url: &str) {}

    /// The file is in the cache, verified (`Ok`), or the download failed.
    fn finished(self: Box<Self>, outcome: Outcome<'_>);
}

/// An HTTP request a download sends.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The method (GET).
    pub method: &'a http::Method,
    /// The URL requested (it may hold credentials: show it only sanitized).
    pub url: &'a url::Url,
}

/// One HTTP request of a download; it ends when the call is dropped (after its body was
/// read, or it failed).
pub trait RequestCall: Send + Sync {
    /// The context sent in the request's headers and current while its body is read.
    fn context(&self) -> Option<&Context> {
        None
    }

    /// The response's status arrived.
    fn responded(&self, _status: http::StatusCode) {}

    /// The request, or reading its body, failed.
    fn failed(&self, _error: &ArtifactError) {}
}

/// The store's observer, if any, and the calls it hands back: what the store's code talks to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observers(Option<Arc<dyn StoreObserver>>);

impl Observers {
    pub(crate) fn new(observer: Option<Arc<dyn StoreObserver>>) -> Self {
        Self(observer)
    }

    pub(crate) fn check_started(&self, started: &Started<'_>) -> Option<Box<dyn CheckCall>> {
        self.0.as_ref()?.check_started(started)
    }

    pub(crate) fn download_started(&self, started: &Started<'_>) -> Download {
        Download {
            call: self
                .0
                .as_ref()
                .and_then(|observer| observer.download_started(started)),
            parent: started.parent.clone(),
        }
    }

    pub(crate) fn fetch_joined(&self, path: &Path) {
        if let Some(observer) = &self.0 {
            observer.fetch_joined(path);
        }
    }

    pub(crate) fn cached_copy_rejected(&self, path: &Path, reason: &str) {
        if let Some(observer) = &self.0 {
            observer.cached_copy_rejected(path, reason);
        }
    }
}

/// Reports one check's end to its call, if any.
pub(crate) fn check_finished(call: Option<Box<dyn CheckCall>>, outcome: Outcome<'_>) {
    if let Some(call) = call {
        call.finished(outcome);
    }
}

/// A download in progress, as the store's code sees it.
pub(crate) struct Download {
    call: Option<Box<dyn DownloadCall>>,
    parent: Context,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("observed", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl Download {
    /// The context the download runs in.
    pub(crate) fn context(&self) -> &Context {
        self.call
            .as_ref()
            .and_then(|call| call.context())
            .unwrap_or(&self.parent)
    }

    pub(crate) fn request_started(&self, request: &HttpRequest<'_>) -> Request {
        Request(
            self.call
                .as_ref()
                .and_then(|call| call.request_started(request)),
        )
    }

    pub(crate) fn resuming(&self, offset: u64, url: &str) {
        if let Some(call) = &self.call {
            call.resuming(offset, url);
        }
    }

    pub(crate) fn finished(self, outcome: Outcome<'_>) {
        if let Some(call) = self.call {
            call.finished(outcome);
        }
    }
}

/// One HTTP request in progress; ends when dropped.
pub(crate) struct Request(Option<Box<dyn RequestCall>>);

impl Request {
    pub(crate) fn context(&self) -> Option<&Context> {
        self.0.as_ref()?.context()
    }

    pub(crate) fn responded(&self, status: http::StatusCode) {
        if let Some(call) = &self.0 {
            call.responded(status);
        }
    }

    pub(crate) fn failed(&self, error: &ArtifactError) {
        if let Some(call) = &self.0 {
            call.failed(error);
        }
    }
}
