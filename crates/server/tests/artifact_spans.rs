//! The spans the artifact store's observer (`ArtifactSpans`) makes from its reports, read back
//! from the telemetry crate's in-memory trace store: `model.artifacts.download` /
//! `model.artifacts.load` under the caller's `model.load`, an HTTP CLIENT span under the
//! download, and its traceparent received by the server.
#![allow(clippy::unwrap_used)]

// The artifact store's own test file server (a real HTTP server on 127.0.0.1).
#[path = "../../artifacts/tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use inferd_artifacts::{ArtifactRequest, ArtifactSource, ArtifactStore, Sha256Digest, StoreConfig};
use inferd_otel::semconv as sc;
use inferd_otel::{span_builder, OtelSpan};
use inferd_server::observe::artifact_spans::ArtifactSpans;
use inferd_telemetry::{
    build_with_writer, Mode, PropagatorConfig, Propagators, SpanRecord, TelemetryConfig,
    TelemetryGuard,
};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::Context;
use support::{content, temp_dir, FileServer, Served};
use tracing::Dispatch;

fn telemetry() -> (TelemetryGuard, Dispatch) {
    // What `inferd_telemetry::init` installs globally for outgoing headers.
    opentelemetry::global::set_text_map_propagator(Propagators::new(&PropagatorConfig::default()));
    let config = TelemetryConfig {
        mode: Mode::Local,
        ..TelemetryConfig::default()
    };
    build_with_writer(&config, std::io::sink, false).unwrap()
}

/// A root `model.load` span, as the registry starts one for a load at start-up.
fn model_load_span(guard: &TelemetryGuard) -> OtelSpan {
    let tracer = guard.tracer().unwrap();
    let builder = span_builder(sc::SPAN_MODEL_LOAD, SpanKind::Internal, Vec::new());
    OtelSpan::start(&tracer, &Context::new(), "load", builder)
}

fn ids(span: &OtelSpan) -> (String, String) {
    let sc = span.context().unwrap().span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

/// A store that reports to the plugin the server registers.
fn store(name: &str) -> ArtifactStore {
    ArtifactStore::with_observer(StoreConfig::new(temp_dir(name)), Arc::new(ArtifactSpans)).unwrap()
}

fn spans_of(guard: &TelemetryGuard, trace_id: &str) -> Vec<SpanRecord> {
    guard.trace_store().unwrap().trace(trace_id).unwrap().spans
}

fn named<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} span in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn download_span_sits_under_model_load_and_the_server_receives_its_traceparent() {
    let (guard, dispatch) = telemetry();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let server = FileServer::start().await;
    let body = content(64_000);
    let url = server.add(
        "m.gguf",
        Served {
            body: body.clone(),
            ..Served::default()
        },
    );
    let store = store("telemetry-download");
    let request = ArtifactRequest::new("tiny", ArtifactSource::parse(&url).unwrap());

    let load = model_load_span(&guard);
    let (trace_id, load_id) = ids(&load);
    load.run(store.fetch(&request)).await.unwrap();
    load.end();

    let spans = spans_of(&guard, &trace_id);
    let download = named(&spans, sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD);
    assert_eq!(download.parent_span_id.as_deref(), Some(load_id.as_str()));
    assert_eq!(download.attributes[sc::INFERD_MODEL_ID], "tiny");
    assert_eq!(
        download.attributes[sc::INFERD_MODEL_ARTIFACTS_SOURCE],
        "http"
    );
    assert_eq!(download.attributes[sc::URL_FULL], url.as_str());
    assert_eq!(
        download.attributes[sc::INFERD_MODEL_ARTIFACTS_BYTES],
        body.len()
    );
    assert_ne!(download.status.code, "error");
    let client = spans
        .iter()
        .find(|s| s.kind == "client")
        .expect("an HTTP client span");
    assert_eq!(
        client.parent_span_id.as_deref(),
        Some(download.span_id.as_str())
    );
    assert_eq!(client.attributes[sc::HTTP_RESPONSE_STATUS_CODE], 200);
    let seen = server.seen("m.gguf");
    // Sampled, and random: the trace started here, with an id drawn at random.
    assert_eq!(
        seen[0].traceparent.as_deref(),
        Some(format!("00-{trace_id}-{}-03", client.span_id).as_str())
    );

    // The next load of the same model finds it in the cache.
    let load = model_load_span(&guard);
    let (trace_id, load_id) = ids(&load);
    load.run(store.fetch(&request)).await.unwrap();
    load.end();
    let spans = spans_of(&guard, &trace_id);
    let hit = named(&spans, sc::SPAN_MODEL_ARTIFACTS_LOAD);
    assert_eq!(hit.parent_span_id.as_deref(), Some(load_id.as_str()));
    assert_eq!(hit.attributes[sc::INFERD_MODEL_ID], "tiny");
    assert_eq!(
        hit.attributes[sc::INFERD_MODEL_ARTIFACTS_SOURCE],
        "local_cache"
    );
    assert_eq!(hit.attributes[sc::INFERD_MODEL_ARTIFACTS_BYTES], body.len());
    assert!(spans
        .iter()
        .all(|s| s.name != sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD));
    assert_eq!(server.seen("m.gguf").len(), 1);
}

#[tokio::test]
async fn failed_download_and_local_file_spans() {
    let (guard, dispatch) = telemetry();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let server = FileServer::start().await;
    let url = server.add(
        "m.gguf",
        Served {
            body: content(1000),
            ..Served::default()
        },
    );
    let store = store("telemetry-errors");

    let bad = ArtifactRequest::new("m", ArtifactSource::parse(&url).unwrap())
        .with_sha256(Some(Sha256Digest::of(b"something else")));
    let load = model_load_span(&guard);
    let (trace_id, _) = ids(&load);
    assert!(load.run(store.fetch(&bad)).await.is_err());
    load.end();
    let spans = spans_of(&guard, &trace_id);
    let download = named(&spans, sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD);
    assert_eq!(download.status.code, "error");
    assert_eq!(download.attributes[sc::ERROR_TYPE], "checksum_mismatch");

    let file = temp_dir("telemetry-local").join("local.gguf");
    std::fs::write(&file, b"12345").unwrap();
    let local = ArtifactRequest::new(
        "loc",
        ArtifactSource::parse(file.to_str().unwrap()).unwrap(),
    );
    let load = model_load_span(&guard);
    let (trace_id, load_id) = ids(&load);
    load.run(store.fetch(&local)).await.unwrap();
    load.end();
    let spans = spans_of(&guard, &trace_id);
    let span = named(&spans, sc::SPAN_MODEL_ARTIFACTS_LOAD);
    assert_eq!(span.parent_span_id.as_deref(), Some(load_id.as_str()));
    assert_eq!(
        span.attributes[sc::INFERD_MODEL_ARTIFACTS_SOURCE],
        "local_cache"
    );
    assert_eq!(span.attributes[sc::INFERD_MODEL_ARTIFACTS_BYTES], 5);
}

#[tokio::test]
async fn a_cut_download_marks_its_client_span_and_the_resume_is_an_event_with_a_ranged_request() {
    let (guard, dispatch) = telemetry();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let server = FileServer::start().await;
    let body = content(200_000);
    let url = server.add(
        "resume.gguf",
        Served {
            body: body.clone(),
            ranges: true,
            truncate_first: 1,
            ..Served::default()
        },
    );
    let store = store("telemetry-resume");
    let request = ArtifactRequest::new("r", ArtifactSource::parse(&url).unwrap());

    // The first response is cut short: the request and the download fail, the part is kept.
    let load = model_load_span(&guard);
    let (trace_id, _) = ids(&load);
    assert!(load.run(store.fetch(&request)).await.is_err());
    load.end();
    let spans = spans_of(&guard, &trace_id);
    let download = named(&spans, sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD);
    assert_eq!(download.status.code, "error");
    assert_eq!(download.attributes[sc::ERROR_TYPE], "truncated");
    assert!(download
        .events
        .iter()
        .any(|e| e.name == "model file download failed"));
    let client = spans.iter().find(|s| s.kind == "client").unwrap();
    assert_eq!(
        client.parent_span_id.as_deref(),
        Some(download.span_id.as_str())
    );
    assert_eq!(client.attributes[sc::HTTP_RESPONSE_STATUS_CODE], 200);
    assert_eq!(client.status.code, "error");
    assert_eq!(client.attributes[sc::ERROR_TYPE], "truncated");

    // The next fetch resumes: one ranged request (206), a `resuming download` event.
    let load = model_load_span(&guard);
    let (trace_id, _) = ids(&load);
    load.run(store.fetch(&request)).await.unwrap();
    load.end();
    let spans = spans_of(&guard, &trace_id);
    let download = named(&spans, sc::SPAN_MODEL_ARTIFACTS_DOWNLOAD);
    assert_ne!(download.status.code, "error");
    let offset = body.len() / 2;
    let resumed = download
        .events
        .iter()
        .find(|e| e.name == "resuming download")
        .expect("a resuming download event");
    assert_eq!(resumed.attributes["offset"], offset);
    assert!(download
        .events
        .iter()
        .any(|e| e.name == "model file downloaded" && e.attributes["bytes"] == body.len()));
    let clients: Vec<_> = spans.iter().filter(|s| s.kind == "client").collect();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].attributes[sc::HTTP_RESPONSE_STATUS_CODE], 206);
    let seen = server.seen("resume.gguf");
    assert_eq!(
        seen[1].traceparent.as_deref(),
        Some(format!("00-{trace_id}-{}-03", clients[0].span_id).as_str())
    );
}

/// Without an observer the store reports nothing and still fetches (as `inferd pull` uses it).
#[tokio::test]
async fn a_store_without_an_observer_makes_no_span() {
    let (guard, dispatch) = telemetry();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let server = FileServer::start().await;
    let url = server.add(
        "quiet.gguf",
        Served {
            body: content(1000),
            ..Served::default()
        },
    );
    let store = ArtifactStore::new(StoreConfig::new(temp_dir("telemetry-quiet"))).unwrap();
    let request = ArtifactRequest::new("q", ArtifactSource::parse(&url).unwrap());
    let load = model_load_span(&guard);
    let (trace_id, _) = ids(&load);
    load.run(store.fetch(&request)).await.unwrap();
    load.end();
    let names: Vec<_> = spans_of(&guard, &trace_id)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec![sc::SPAN_MODEL_LOAD.to_owned()]);
    // The load's context still reaches the file server.
    assert!(server.seen("quiet.gguf")[0]
        .traceparent
        .as_deref()
        .is_some_and(|t| t.contains(&trace_id)));
}
