use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn config(pairs: &[(&str, &str)]) -> TelemetryConfig {
    match TelemetryConfig::from_env(&env(pairs)) {
        Ok(c) => c,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn error(pairs: &[(&str, &str)]) -> String {
    match TelemetryConfig::from_env(&env(pairs)) {
        Ok(c) => panic!("config accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mode_defaults_to_local() {
    assert_eq!(config(&[]).mode, Mode::Local);
}

#[test]
fn otlp_endpoint_selects_otlp_mode() {
    assert_eq!(
        config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]).mode,
        Mode::Otlp
    );
    assert_eq!(
        config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])
        .mode,
        Mode::Otlp
    );
}

#[test]
fn sdk_disabled_selects_off_mode() {
    assert_eq!(config(&[("OTEL_SDK_DISABLED", "TRUE")]).mode, Mode::Off);
    assert_eq!(config(&[("OTEL_SDK_DISABLED", "false")]).mode, Mode::Local);
}

#[test]
fn explicit_mode_wins_over_endpoint_and_disabled() {
    let c = config(&[
        ("INFERD_TELEMETRY", "console"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    assert_eq!(c.mode, Mode::Console);
}

#[test]
fn invalid_mode_names_variable_value_and_accepted_values() {
    let e = error(&[("INFERD_TELEMETRY", "loud")]);
    assert!(e.contains("INFERD_TELEMETRY"), "{e}");
    assert!(e.contains("\"loud\""), "{e}");
    assert!(e.contains("off, local, otlp or console"), "{e}");
}

#[test]
fn service_name_from_variable_then_resource_attributes_then_default() {
    assert_eq!(config(&[]).service_name, "inferd");
    assert_eq!(
        config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]).service_name,
        "from-attrs"
    );
    assert_eq!(
        config(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "svc")
        ])
        .service_name,
        "svc"
    );
}

#[test]
fn resource_attributes_are_percent_decoded() {
    let c = config(&[("OTEL_RESOURCE_ATTRIBUTES", "team=ml%20infra, region=eu-1")]);
    assert_eq!(
        c.resource_attributes,
        vec![
            ("team".to_owned(), "ml infra".to_owned()),
            ("region".to_owned(), "eu-1".to_owned())
        ]
    );
    let e = error(&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")]);
    assert!(e.contains("OTEL_RESOURCE_ATTRIBUTES"), "{e}");
}

#[test]
fn http_protocol_appends_signal_paths_to_the_base_endpoint() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://logs:9999/custom",
        ),
    ]);
    assert_eq!(c.otlp_traces.endpoint, "http://c:4318/v1/traces");
    assert_eq!(c.otlp_metrics.endpoint, "http://c:4318/v1/metrics");
    assert_eq!(c.otlp_logs.endpoint, "http://logs:9999/custom");
    assert_eq!(c.otlp_traces.protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn grpc_endpoint_is_used_as_given_and_is_the_default() {
    let c = config(&[]);
    assert_eq!(c.otlp_traces.protocol, OtlpProtocol::Grpc);
    assert_eq!(c.otlp_traces.endpoint, "http://localhost:4317");
    let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    assert_eq!(c.otlp_metrics.endpoint, "http://collector:4317");
}

#[test]
fn per_signal_protocol_overrides_general() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(c.otlp_traces.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.otlp_metrics.protocol, OtlpProtocol::Grpc);
    let e = error(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && e.contains("grpc or http/protobuf"),
        "{e}"
    );
}

#[test]
fn headers_merge_with_per_signal_winning() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a,tenant=t1"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=b"),
    ]);
    assert_eq!(
        c.otlp_traces.headers,
        vec![
            ("tenant".to_owned(), "t1".to_owned()),
            ("api-key".to_owned(), "b".to_owned())
        ]
    );
    assert_eq!(c.otlp_metrics.headers.len(), 2);
}

#[test]
fn bad_endpoint_is_rejected_with_its_variable() {
    let e = error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4317")]);
    assert!(e.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{e}");
    let e = error(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://")]);
    assert!(e.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{e}");
}

#[test]
fn grpc_endpoint_without_a_scheme_is_tls_unless_insecure() {
    let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
    assert_eq!(c.otlp_traces.endpoint, "https://collector:4317");
    assert!(!c.otlp_traces.insecure);
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false"),
    ]);
    assert_eq!(c.otlp_traces.endpoint, "http://collector:4317");
    assert_eq!(c.otlp_metrics.endpoint, "http://collector:4317");
    assert_eq!(
        c.otlp_logs.endpoint, "https://collector:4317",
        "per signal wins"
    );
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "[::1]:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "TRUE"),
    ]);
    assert_eq!(c.otlp_metrics.endpoint, "http://[::1]:4317");
    let e = error(&[("OTEL_EXPORTER_OTLP_INSECURE", "yes")]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_INSECURE") && e.contains("true or false"),
        "{e}"
    );
}

#[test]
fn a_scheme_wins_over_insecure() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(c.otlp_traces.endpoint, "https://collector:4317");
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
    ]);
    assert_eq!(c.otlp_traces.endpoint, "http://collector:4317");
}

#[test]
fn http_endpoint_needs_a_scheme_whatever_insecure_says() {
    let e = error(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && e.contains("\"collector:4318\""),
        "{e}"
    );
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
    ]);
    assert_eq!(c.otlp_logs.endpoint, "https://collector:4318/v1/logs");
}

#[test]
fn tls_files_name_their_variable_and_per_signal_files_win() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "/etc/otel/metrics-ca.pem",
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/otel/client.pem",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client-key.pem"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
            "/etc/otel/logs-key.pem",
        ),
    ]);
    let file = |variable: &str, path: &str| TlsFile {
        variable: variable.to_owned(),
        path: PathBuf::from(path),
    };
    assert_eq!(
        c.otlp_traces.certificate,
        Some(file("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"))
    );
    assert_eq!(
        c.otlp_metrics.certificate,
        Some(file(
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "/etc/otel/metrics-ca.pem"
        ))
    );
    assert_eq!(
        c.otlp_traces.client_identity,
        Some(ClientIdentity {
            certificate: file(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/etc/otel/client.pem"
            ),
            key: file("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client-key.pem"),
        })
    );
    assert_eq!(
        c.otlp_logs.client_identity.map(|id| id.key),
        Some(file(
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
            "/etc/otel/logs-key.pem"
        ))
    );
    let c = config(&[]);
    assert_eq!(c.otlp_traces.certificate, None);
    assert_eq!(c.otlp_traces.client_identity, None);
}

#[test]
fn client_certificate_without_its_key_names_both_variables() {
    let e = error(&[(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "/etc/otel/client.pem",
    )]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
            && e.contains("/etc/otel/client.pem")
            && e.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{e}"
    );
    let e = error(&[("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/etc/otel/key.pem")]);
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY")
            && e.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
            && e.contains("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE"),
        "{e}"
    );
    // A per-signal key completes the general certificate.
    let c = config(&[
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/otel/client.pem",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/key.pem"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "/etc/otel/traces-key.pem",
        ),
    ]);
    assert!(c.otlp_traces.client_identity.is_some());
}

#[test]
fn sampler_variants_and_ratio() {
    let c = config(&[]);
    assert!(c.sampler.parent_based);
    assert!((c.sampler.ratio - 1.0).abs() < f64::EPSILON);
    let c = config(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]);
    assert!((c.sampler.ratio - 0.25).abs() < f64::EPSILON);
    let c = config(&[("OTEL_TRACES_SAMPLER", "always_off")]);
    assert!(!c.sampler.parent_based);
    assert!(c.sampler.ratio.abs() < f64::EPSILON);
    let e = error(&[("OTEL_TRACES_SAMPLER_ARG", "2")]);
    assert!(
        e.contains("OTEL_TRACES_SAMPLER_ARG") && e.contains("from 0 to 1"),
        "{e}"
    );
    let e = error(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]);
    assert!(e.contains("OTEL_TRACES_SAMPLER"), "{e}");
}

#[test]
fn force_trace_header_can_be_disabled() {
    assert!(config(&[]).sampler.force_trace_header);
    assert!(
        !config(&[("INFERD_FORCE_TRACE_HEADER", "false")])
            .sampler
            .force_trace_header
    );
    let e = error(&[("INFERD_FORCE_TRACE_HEADER", "maybe")]);
    assert!(
        e.contains("INFERD_FORCE_TRACE_HEADER") && e.contains("true or false"),
        "{e}"
    );
}

#[test]
fn batch_and_metric_settings() {
    let c = config(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
    ]);
    assert_eq!(c.batch.schedule_delay, Duration::from_millis(100));
    assert_eq!(c.batch.export_timeout, Duration::from_secs(2));
    assert_eq!(c.batch.max_queue_size, 64);
    assert_eq!(
        c.batch.max_export_batch_size, 64,
        "batch is capped at the queue size"
    );
    assert_eq!(c.metric_export_interval, Duration::from_millis(1500));
    let e = error(&[("OTEL_BSP_SCHEDULE_DELAY", "5s")]);
    assert!(
        e.contains("OTEL_BSP_SCHEDULE_DELAY") && e.contains("milliseconds"),
        "{e}"
    );
}

#[test]
fn per_signal_exporters() {
    let c = config(&[
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "console"),
    ]);
    assert_eq!(c.otlp_traces.exporter, Exporter::Otlp);
    assert_eq!(c.otlp_metrics.exporter, Exporter::Console);
    assert_eq!(c.otlp_logs.exporter, Exporter::None);
    let e = error(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
    assert!(
        e.contains("OTEL_TRACES_EXPORTER") && e.contains("otlp, console or none"),
        "{e}"
    );
}

#[test]
fn propagators_list() {
    assert_eq!(config(&[]).propagators, PropagatorConfig::default());
    let c = config(&[("OTEL_PROPAGATORS", "tracecontext")]);
    assert!(c.propagators.trace_context && !c.propagators.baggage);
    let c = config(&[("OTEL_PROPAGATORS", "none")]);
    assert!(!c.propagators.trace_context && !c.propagators.baggage);
    let e = error(&[("OTEL_PROPAGATORS", "tracecontext,b3")]);
    assert!(
        e.contains("OTEL_PROPAGATORS") && e.contains("tracecontext, baggage or none"),
        "{e}"
    );
}

#[test]
fn inferd_settings() {
    let c = config(&[
        ("INFERD_TRACE_STORE_TRACES", "10"),
        ("INFERD_TRACE_STORE_SPANS", "100"),
        ("INFERD_BAGGAGE_SPAN_ATTRIBUTES", "tenant, user.tier"),
        ("INFERD_LOG_FORMAT", "json"),
        ("INFERD_LOG", "debug,hyper=warn"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
    ]);
    assert_eq!(
        c.trace_store,
        TraceStoreConfig {
            max_traces: 10,
            max_spans: 100
        }
    );
    assert_eq!(c.baggage_span_attributes, vec!["tenant", "user.tier"]);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_filter, "debug,hyper=warn");
    assert!(c.genai_capture_message_content);
    let e = error(&[("INFERD_TRACE_STORE_TRACES", "0")]);
    assert!(e.contains("INFERD_TRACE_STORE_TRACES"), "{e}");
    let e = error(&[("INFERD_LOG_FORMAT", "xml")]);
    assert!(e.contains("json, pretty or auto"), "{e}");
}

#[test]
fn empty_values_count_as_unset() {
    let c = config(&[("OTEL_SERVICE_NAME", ""), ("INFERD_TELEMETRY", " ")]);
    assert_eq!(c.service_name, "inferd");
    assert_eq!(c.mode, Mode::Local);
}

#[test]
fn closures_are_an_env_source() {
    let source = |k: &str| (k == "INFERD_TELEMETRY").then(|| "off".to_owned());
    let c = TelemetryConfig::from_env(&source);
    assert!(matches!(
        c,
        Ok(TelemetryConfig {
            mode: Mode::Off,
            ..
        })
    ));
}
