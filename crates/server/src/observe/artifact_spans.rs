//! What the artifact store's reports become: `model.artifacts.load` (a file checked on local
//! disk: a cache hit or a local path) and `model.artifacts.download` (a download into the
//! cache), children of the caller's context (the registry's `model.load`), an HTTP CLIENT span
//! per request of a download (its context sent as `traceparent`), and the store's lines
//! (`model file found in the cache`, `resuming download`, `model file downloaded`, `model file
//! download failed`, `joining a fetch in flight`, `cached model file not usable; fetching it
//! again`).
//!
//! The spans start with the tracer of the parent's trace (none outside one, as with telemetry
//! off); the lines are always written.

use std::path::Path;

use inferd_artifacts::observe::{
    CheckCall, DownloadCall, HttpRequest, Outcome, RequestCall, Started,
};
use inferd_artifacts::{ArtifactError, ArtifactOrigin, StoreObserver};
use inferd_otel::semconv as sc;
use inferd_otel::{http_client_span, log_event, record_http_response, span_builder, OtelSpan};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

/// The `span` of log lines written inside `model.artifacts.load` and
/// `model.artifacts.download`.
const LOAD_LABEL: &str = "artifacts_load";
const DOWNLOAD_LABEL: &str = "artifacts_download";

/// Makes the artifact store's spans and lines from its reports.
#[derive(Debug, Default)]
pub struct ArtifactSpans;

impl StoreObserver for ArtifactSpans {
    fn check_started(&self, started: &Started<'_>) -> Option<Box<dyn CheckCall>> {
        let span = OtelSpan::start_child_with(started.parent, LOAD_LABEL, || {
            span_builder(
                sc::SPAN_MODEL_ARTIFACTS_LOAD,
                SpanKind::Internal,
                vec![
                    KeyValue::new(sc::INFERD_MODEL_ID, started.request.model_id.clone()),
                    KeyValue::new(
                        sc::INFERD_MODEL_ARTIFACTS_SOURCE,
                        sc::INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE,
                    ),
                ],
            )
        });
        Some(Box::new(CheckSpan(span)))
    }

    fn download_started(&self, started: &Started<'_>) -> Option<Box<dyn DownloadCall>> {
        let request = started.request;
        let span = OtelSpan::start_child_with(started.parent, DOWNLOAD_LABEL, || {
            span_builder(
                sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD,
                SpanKind::Internal,
                vec![
                    KeyValue::new(sc::INFERD_MODEL_ID, request.model_id.clone()),
                    KeyValue::new(sc::INFERD_MODEL_ARTIFACTS_SOURCE, request.source.kind()),
                    KeyValue::new(sc::URL_FULL, request.source.display_url()),
                ],
            )
        });
        Some(Box::new(DownloadSpan(span)))
    }

    fn fetch_joined(&self, path: &Path) {
        tracing::debug!(path = %path.display(), "joining a fetch in flight");
    }

    fn cached_copy_rejected(&self, path: &Path, reason: &str) {
        tracing::warn!(path = %path.display(), %reason, "cached model file not usable; fetching it again");
    }
}

/// `model.artifacts.load`.
struct CheckSpan(OtelSpan);

impl CheckCall for CheckSpan {
    fn finished(self: Box<Self>, outcome: Outcome<'_>) {
        let span = &self.0;
        match outcome {
            Ok(artifact) => {
                set_bytes(span, artifact.bytes);
                if artifact.origin == ArtifactOrigin::CacheHit {
                    span.in_scope(|| {
                        tracing::debug!(path = %artifact.path.display(), "model file found in the cache");
                    });
                }
            }
            Err(e) => span.record_error(e.kind(), &e.to_string()),
        }
        span.end();
    }
}

/// `model.artifacts.download`; its HTTP requests are its children.
struct DownloadSpan(OtelSpan);

impl DownloadCall for DownloadSpan {
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    fn request_started(&self, request: &HttpRequest<'_>) -> Option<Box<dyn RequestCall>> {
        let span = self
            .0
            .in_scope(|| http_client_span(request.method, request.url.as_str()));
        Some(Box::new(ClientSpan(span)))
    }

    fn resuming(&self, offset: u64, url: &str) {
        log_event!(
            self.0,
            INFO,
            "resuming download",
            offset = offset,
            url = url
        );
    }

    fn finished(self: Box<Self>, outcome: Outcome<'_>) {
        let span = &self.0;
        match outcome {
            Ok(artifact) => {
                set_bytes(span, artifact.bytes);
                log_event!(
                    span,
                    INFO,
                    "model file downloaded",
                    path = artifact.path.display().to_string(),
                    bytes = artifact.bytes,
                );
            }
            Err(e) => {
                span.record_error(e.kind(), &e.to_string());
                log_event!(
                    span,
                    WARN,
                    "model file download failed",
                    error = e.to_string()
                );
            }
        }
        span.end();
    }
}

/// The CLIENT span of one HTTP request; ends when the request does.
struct ClientSpan(OtelSpan);

impl RequestCall for ClientSpan {
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    fn responded(&self, status: axum::http::StatusCode) {
        record_http_response(&self.0, status);
    }

    fn failed(&self, error: &ArtifactError) {
        self.0.record_error(error.kind(), &error.to_string());
    }
}

impl Drop for ClientSpan {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// `inferd.model.artifacts.bytes`: the size of the file ready on disk.
fn set_bytes(span: &OtelSpan, bytes: u64) {
    span.set_attribute(KeyValue::new(
        sc::INFERD_MODEL_ARTIFACTS_BYTES,
        i64::try_from(bytes).unwrap_or(i64::MAX),
    ));
}
