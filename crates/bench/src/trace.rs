//! Tracing of a bench run: off unless asked for, switched on like the server (same flags and
//! OTEL_* variables), with a CLIENT span per request under a session or stage span.

use inferd_otel::{semconv, span_builder, EnvSource, OtelSpan, Tracer};
use inferd_telemetry::{Mode, TelemetryConfig};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};

use crate::args::BenchArgs;
use crate::client::{Outcome, Target};

/// The bench's telemetry configuration. The rules of `inferd serve` apply (`--telemetry`,
/// `INFERD_TELEMETRY`, an OTLP endpoint selects `otlp`, `OTEL_SDK_DISABLED`), except that
/// nothing asked means `off` rather than `local`, `--trace` means console output when no
/// endpoint is set, and `local` (an in-memory store nobody can read here) prints to the
/// console.
pub fn telemetry_config(args: &BenchArgs, env: &dyn EnvSource) -> anyhow::Result<TelemetryConfig> {
    let explicit = args.telemetry.telemetry.is_some()
        || env.get(inferd_telemetry::vars::INFERD_TELEMETRY).is_some();
    let log_given =
        args.telemetry.log.is_some() || env.get(inferd_telemetry::vars::INFERD_LOG).is_some();
    let mut config = args.telemetry.clone().into_config(env)?;
    config.mode = match (explicit, config.mode) {
        (true, Mode::Local) => Mode::Console,
        (true, mode) | (false, mode @ (Mode::Otlp | Mode::Off)) => mode,
        (false, _) if args.trace => Mode::Console,
        (false, _) => Mode::Off,
    };
    let named = env.get("OTEL_SERVICE_NAME").is_some()
        || config
            .resource_attributes
            .iter()
            .any(|(k, _)| k == semconv::SERVICE_NAME);
    if !named {
        config.service_name = "inferd-bench".to_owned();
    }
    config.service_version = env!("CARGO_PKG_VERSION").to_owned();
    if !log_given {
        config.log_filter = "warn".to_owned();
    }
    // No library's `tracing` spans become OpenTelemetry spans (the bench's own are `OtelSpan`s).
    config.span_filter = "off,inferd_bench=info".to_owned();
    Ok(config)
}

/// The spans a run hangs its requests under.
#[derive(Debug, Clone)]
pub struct Tracing {
    /// `None` when tracing is off: every span is [`OtelSpan::none`].
    tracer: Option<Tracer>,
    per_stage: bool,
    session: OtelSpan,
}

impl Tracing {
    /// Spans started with `tracer` (none without one); `per_stage` makes each stage a trace of
    /// its own.
    pub fn new(tracer: Option<Tracer>, per_stage: bool, target: &Target) -> Tracing {
        let session = match &tracer {
            Some(tracer) if !per_stage => OtelSpan::start(
                tracer,
                &Context::new(),
                "bench",
                span_builder(
                    "bench",
                    SpanKind::Internal,
                    vec![
                        KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, target.model.clone()),
                        KeyValue::new(
                            semconv::URL_FULL,
                            inferd_otel::sanitize_url(&target.endpoint),
                        ),
                    ],
                ),
            ),
            _ => OtelSpan::none(),
        };
        Tracing {
            tracer,
            per_stage,
            session,
        }
    }

    /// The span of stage `name` (a root span with `--trace-per-stage`); end it when the stage
    /// is over.
    pub fn stage_span(&self, index: usize, name: &str, load: &str) -> OtelSpan {
        let Some(tracer) = &self.tracer else {
            return OtelSpan::none();
        };
        let root = Context::new();
        let parent = match self.session.context() {
            Some(session) if !self.per_stage => session,
            _ => &root,
        };
        let attributes = vec![
            KeyValue::new(semconv::INFERD_BENCH_STAGE, name.to_owned()),
            KeyValue::new(semconv::INFERD_BENCH_STAGE_INDEX, index as i64),
            KeyValue::new(semconv::INFERD_BENCH_LOAD, load.to_owned()),
        ];
        let builder = span_builder(
            format!("bench.stage {name}"),
            SpanKind::Internal,
            attributes,
        );
        OtelSpan::start(tracer, parent, "bench.stage", builder)
    }

    /// Ends the session span (the run is over).
    pub fn end(&self) {
        self.session.end();
    }
}

/// The CLIENT span of one request, child of `stage`, with the attributes a sampler may use set
/// at start (GenAI client conventions).
pub fn request_span(stage: &OtelSpan, target: &Target, max_tokens: Option<u32>) -> OtelSpan {
    let Some(parent) = stage.context() else {
        return OtelSpan::none();
    };
    OtelSpan::start_child_with(parent, "request", || {
        let (address, port) = server_address(&target.endpoint);
        let mut attributes = vec![
            KeyValue::new(semconv::GEN_AI_OPERATION_NAME, target.api.operation_name()),
            KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, "openai"),
            KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, target.model.clone()),
            KeyValue::new(semconv::SERVER_ADDRESS, address),
            KeyValue::new(semconv::SERVER_PORT, port),
            KeyValue::new(semconv::HTTP_REQUEST_METHOD, "POST"),
            KeyValue::new(
                semconv::URL_FULL,
                inferd_otel::sanitize_url(&target.endpoint),
            ),
            KeyValue::new(semconv::GEN_AI_REQUEST_STREAM, target.stream),
        ];
        if let Some(n) = max_tokens {
            attributes.push(KeyValue::new(
                semconv::GEN_AI_REQUEST_MAX_TOKENS,
                i64::from(n),
            ));
        }
        span_builder(
            format!("{} {}", target.api.operation_name(), target.model),
            SpanKind::Client,
            attributes,
        )
    })
}

fn server_address(url: &str) -> (String, i64) {
    let uri: Option<http::Uri> = url.parse().ok();
    let host = uri
        .as_ref()
        .and_then(|u| u.host())
        .unwrap_or_default()
        .to_owned();
    let port = uri
        .as_ref()
        .and_then(|u| {
            u.port_u16().or(match u.scheme_str() {
                Some("https") => Some(443),
                _ => Some(80),
            })
        })
        .unwrap_or(80);
    (host, i64::from(port))
}

/// Records what the request measured on its span.
pub fn record_outcome(span: &OtelSpan, outcome: &Outcome) {
    if !span.is_some() {
        return;
    }
    let mut attributes = Vec::with_capacity(12);
    if let Some(status) = outcome.status {
        attributes.push(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
    }
    if let Some(model) = &outcome.response_model {
        attributes.push(KeyValue::new(semconv::GEN_AI_RESPONSE_MODEL, model.clone()));
    }
    if let Some(id) = &outcome.response_id {
        attributes.push(KeyValue::new(semconv::GEN_AI_RESPONSE_ID, id.clone()));
    }
    if let Some(reason) = &outcome.finish_reason {
        let reasons = Value::Array(Array::String(vec![StringValue::from(reason.clone())]));
        attributes.push(KeyValue::new(
            semconv::GEN_AI_RESPONSE_FINISH_REASONS,
            reasons,
        ));
    }
    let input = i64::try_from(outcome.input_tokens).unwrap_or(i64::MAX);
    let output = i64::try_from(outcome.output_tokens).unwrap_or(i64::MAX);
    attributes.push(KeyValue::new(semconv::GEN_AI_USAGE_INPUT_TOKENS, input));
    attributes.push(KeyValue::new(semconv::GEN_AI_USAGE_OUTPUT_TOKENS, output));
    if let Some(ttft) = outcome.ttft {
        attributes.push(KeyValue::new(
            semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
            ttft,
        ));
        attributes.push(KeyValue::new(
            semconv::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN,
            ttft,
        ));
    }
    if let Some(tpot) = outcome.tpot() {
        attributes.push(KeyValue::new(semconv::INFERD_TIME_PER_OUTPUT_TOKEN, tpot));
    }
    attributes.push(KeyValue::new(semconv::GEN_AI_LATENCY_E2E, outcome.e2e));
    attributes.push(KeyValue::new(
        semconv::INFERD_BENCH_SCHEDULE_LAG,
        outcome.schedule_lag,
    ));
    span.set_attributes(attributes);
    if let Some(kind) = &outcome.error {
        let message = outcome.error_message.as_deref().unwrap_or(kind);
        span.record_error(kind.clone(), message);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(argv: &[&str], env: &[(&str, &str)]) -> TelemetryConfig {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let mut full = vec!["bench"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).expect("parse");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        telemetry_config(&cli.bench, &env).expect("config")
    }

    #[test]
    fn tracing_is_off_unless_asked_for() {
        assert_eq!(config(&[], &[]).mode, Mode::Off);
        assert_eq!(config(&["--trace"], &[]).mode, Mode::Console);
        assert_eq!(
            config(
                &["--trace"],
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]
            )
            .mode,
            Mode::Otlp
        );
        assert_eq!(
            config(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]).mode,
            Mode::Otlp
        );
        assert_eq!(config(&["--telemetry", "local"], &[]).mode, Mode::Console);
        assert_eq!(
            config(&["--trace", "--telemetry", "off"], &[]).mode,
            Mode::Off
        );
        assert_eq!(
            config(&["--trace"], &[("OTEL_SDK_DISABLED", "true")]).mode,
            Mode::Off
        );
    }

    #[test]
    fn service_name_defaults_to_inferd_bench() {
        assert_eq!(config(&[], &[]).service_name, "inferd-bench");
        assert_eq!(
            config(&[], &[("OTEL_SERVICE_NAME", "loadgen")]).service_name,
            "loadgen"
        );
    }

    #[test]
    fn server_address_and_port_come_from_the_url() {
        assert_eq!(
            server_address("http://127.0.0.1:8080/v1/chat/completions"),
            ("127.0.0.1".to_owned(), 8080)
        );
        assert_eq!(
            server_address("https://api.example/v1"),
            ("api.example".to_owned(), 443)
        );
    }

    /// The spans of two stages of one request each, and each request's trace id.
    fn spans_of(per_stage: bool) -> (Vec<inferd_telemetry::SpanRecord>, Vec<String>) {
        let config = TelemetryConfig {
            mode: Mode::Local,
            span_filter: "off,inferd_bench=info".to_owned(),
            ..TelemetryConfig::default()
        };
        let (guard, dispatch) =
            inferd_telemetry::build_with_writer(&config, std::io::sink, false).expect("build");
        let target = Target {
            client: reqwest::Client::new(),
            endpoint: "http://127.0.0.1:9/v1/chat/completions".to_owned(),
            api: inferd_openai::Api::Chat,
            model: "m".to_owned(),
            stream: true,
            timeout: std::time::Duration::from_secs(1),
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let tracing = Tracing::new(guard.tracer(), per_stage, &target);
            for (i, name) in ["a", "b"].iter().enumerate() {
                let stage = tracing.stage_span(i, name, "concurrency 1");
                let request = request_span(&stage, &target, Some(4));
                let outcome = Outcome {
                    ttft: Some(0.1),
                    e2e: 0.4,
                    output_tokens: 4,
                    ..Outcome::default()
                };
                record_outcome(&request, &outcome);
                request.end();
                stage.end();
            }
            tracing.end();
        });
        let store = guard.trace_store().expect("store");
        let spans: Vec<inferd_telemetry::SpanRecord> = store
            .recent_traces(10)
            .iter()
            .filter_map(|t| store.trace(&t.trace_id))
            .flat_map(|d| d.spans)
            .collect();
        let ids = spans
            .iter()
            .filter(|s| s.kind == "client")
            .map(|s| s.trace_id.clone())
            .collect();
        (spans, ids)
    }

    #[test]
    fn requests_hang_under_stage_spans_in_one_trace_or_one_per_stage() {
        let (spans, ids) = spans_of(false);
        assert_eq!(ids.len(), 2, "{spans:?}");
        assert_eq!(ids[0], ids[1], "one trace per session");
        let root = spans
            .iter()
            .find(|s| s.name == "bench")
            .expect("bench span");
        let stages: Vec<_> = spans
            .iter()
            .filter(|s| s.name.starts_with("bench.stage"))
            .collect();
        assert_eq!(stages.len(), 2);
        for stage in &stages {
            assert_eq!(stage.parent_span_id.as_deref(), Some(root.span_id.as_str()));
            assert_eq!(
                stage.attributes[semconv::INFERD_BENCH_LOAD],
                "concurrency 1"
            );
        }
        assert!(stages
            .iter()
            .any(|s| s.attributes[semconv::INFERD_BENCH_STAGE] == "b"));
        let requests: Vec<_> = spans.iter().filter(|s| s.kind == "client").collect();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].name, "chat m");
        assert_eq!(
            requests[0].attributes[semconv::GEN_AI_OPERATION_NAME],
            "chat"
        );
        assert_eq!(requests[0].attributes[semconv::SERVER_PORT], 9);
        assert!(
            (requests[0].attributes[semconv::INFERD_TIME_PER_OUTPUT_TOKEN]
                .as_f64()
                .unwrap_or(0.0)
                - 0.1)
                .abs()
                < 1e-9
        );
        assert!(stages
            .iter()
            .any(|s| Some(s.span_id.as_str()) == requests[0].parent_span_id.as_deref()));

        let (spans, ids) = spans_of(true);
        assert_eq!(ids.len(), 2, "{spans:?}");
        assert_ne!(ids[0], ids[1], "one trace per stage");
        assert!(spans.iter().all(|s| s.name != "bench"));
        for stage in spans.iter().filter(|s| s.name.starts_with("bench.stage")) {
            assert_eq!(stage.parent_span_id, None, "a stage is a root span");
        }
    }
}
