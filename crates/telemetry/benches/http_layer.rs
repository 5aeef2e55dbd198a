//! Per-request overhead of the HTTP layer, driven in-process with `tower::ServiceExt::oneshot`
//! through a trivial axum handler, in three settings:
//! (a) no telemetry layer at all, (b) telemetry compiled in but mode off (the layer is not
//! installed: `with_http_layer` leaves the router untouched), (c) on, ratio 1.0, exporting over OTLP/HTTP to a live
//! in-process receiver. All three run under the same log subscriber (INFO filter, JSON to a sink).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, Criterion};
use inferd_telemetry::{build_with_writer, with_http_layer, Mode, TelemetryConfig, TelemetryGuard};
use tower::ServiceExt;

fn app(guard: Option<&TelemetryGuard>) -> Router {
    let router = Router::new().route("/v1/models/{id}", get(|| async { "ok" }));
    match guard {
        None => router,
        Some(guard) => with_http_layer(router, guard),
    }
}

async fn one_request(app: &Router) {
    let request = Request::get("/v1/models/smollm2")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"ok");
}

struct Setting {
    name: &'static str,
    app: Router,
    dispatch: tracing::Dispatch,
    _guard: TelemetryGuard,
}

fn settings(runtime: &tokio::runtime::Runtime) -> Vec<Setting> {
    let off = TelemetryConfig {
        mode: Mode::Off,
        ..TelemetryConfig::default()
    };
    let (endpoint, _spans) = runtime.block_on(support::http_receiver());
    let on = TelemetryConfig::from_env(&support::env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
        ("INFERD_LOG_FORMAT", "json"),
    ]))
    .unwrap();
    let build = |config: &TelemetryConfig| build_with_writer(config, std::io::sink, false).unwrap();
    let (none_guard, none_dispatch) = build(&off);
    let (off_guard, off_dispatch) = build(&off);
    let (on_guard, on_dispatch) = runtime.block_on(async { build(&on) });
    vec![
        Setting {
            name: "a_no_layer",
            app: app(None),
            dispatch: none_dispatch,
            _guard: none_guard,
        },
        Setting {
            name: "b_compiled_in_mode_off",
            app: app(Some(&off_guard)),
            dispatch: off_dispatch,
            _guard: off_guard,
        },
        Setting {
            name: "c_on_ratio_1_otlp",
            app: app(Some(&on_guard)),
            dispatch: on_dispatch,
            _guard: on_guard,
        },
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_http_layer(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("http_layer");
    for setting in settings(&runtime) {
        let _default = tracing::dispatcher::set_default(&setting.dispatch);
        group.bench_function(setting.name, |b| {
            b.to_async(&runtime).iter(|| one_request(&setting.app));
        });
    }
    group.finish();
}

/// A plain timed loop, interleaving the settings in rounds so background load hits all alike,
/// printing ns/request.
fn summary() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 20_000;
    let runtime = runtime();
    let settings = settings(&runtime);
    let mut totals = vec![Duration::ZERO; settings.len()];
    for setting in &settings {
        let _default = tracing::dispatcher::set_default(&setting.dispatch);
        runtime.block_on(async {
            for _ in 0..2_000 {
                one_request(&setting.app).await;
            }
        });
    }
    for _ in 0..ROUNDS {
        for (i, setting) in settings.iter().enumerate() {
            let _default = tracing::dispatcher::set_default(&setting.dispatch);
            let started = Instant::now();
            runtime.block_on(async {
                for _ in 0..PER_ROUND {
                    one_request(&setting.app).await;
                }
            });
            totals[i] += started.elapsed();
        }
    }
    let per_request: Vec<f64> = totals
        .iter()
        .map(|t| t.as_nanos() as f64 / (ROUNDS * PER_ROUND) as f64)
        .collect();
    println!(
        "\nper-request cost over {} requests each:",
        ROUNDS * PER_ROUND
    );
    for (setting, ns) in settings.iter().zip(&per_request) {
        println!("  {:<24} {:>8.0} ns/request", setting.name, ns);
    }
    println!(
        "  off vs no layer: {:+.2}%   on minus no layer: {:.0} ns",
        (per_request[1] / per_request[0] - 1.0) * 100.0,
        per_request[2] - per_request[0]
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_http_layer
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only `cargo bench` (which passes --bench) runs the long summary; `cargo test --benches`
    // runs each benchmark once as a smoke test.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
