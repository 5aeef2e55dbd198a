//! Why an OTLP/HTTP export failed, in the HTTP client's words. The SDK reports every failure
//! without a response as "network error"; the client here records its own error with its
//! sources (`invalid peer certificate: UnknownIssuer`, `Connection refused`) and the exporter
//! wrapper adds it to the failed export's error, which export health logs once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use super::tls::error_chain;

/// The last transport error of one exporter's client since its last export.
#[derive(Debug, Clone, Default)]
pub(super) struct LastTransportError(Arc<Mutex<Option<String>>>);

impl LastTransportError {
    fn set(&self, reason: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    /// `result`, with the transport error recorded during the export added to its reason.
    fn explain(&self, result: OTelSdkResult) -> OTelSdkResult {
        let recorded = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        match (result, recorded) {
            (Err(OTelSdkError::InternalFailure(message)), Some(reason)) => Err(
                OTelSdkError::InternalFailure(format!("{message}: {reason}")),
            ),
            (result, _) => result,
        }
    }
}

/// The blocking reqwest client of OTLP/HTTP, recording its transport errors.
#[derive(Debug)]
pub(super) struct ReportingHttpClient {
    client: reqwest::blocking::Client,
    last: LastTransportError,
}

impl ReportingHttpClient {
    pub(super) fn new(client: reqwest::blocking::Client, last: LastTransportError) -> Self {
        ReportingHttpClient { client, last }
    }
}

#[async_trait::async_trait]
impl HttpClient for ReportingHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let result = self.client.send_bytes(request).await;
        if let Err(error) = &result {
            self.last.set(error_chain(error.as_ref()));
        }
        result
    }
}

/// An exporter whose failures carry the transport error its client recorded.
#[derive(Debug)]
pub(super) struct WithTransportError<E> {
    inner: E,
    last: LastTransportError,
}

impl<E> WithTransportError<E> {
    pub(super) fn new(inner: E, last: LastTransportError) -> Self {
        WithTransportError { inner, last }
    }
}

impl<E: SpanExporter> SpanExporter for WithTransportError<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.last.explain(self.inner.export(batch).await)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for WithTransportError<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.last.explain(self.inner.export(batch).await)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for WithTransportError<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.last.explain(self.inner.export(metrics).await)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
