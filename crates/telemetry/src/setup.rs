//! Start-up and shutdown: builds the tracer, meter and logger providers, the log subscriber and
//! the propagator from a [`TelemetryConfig`], and returns the [`TelemetryGuard`] that owns them.
//! In `off` mode nothing but the log layer is built.

use std::io::{IsTerminal, Write as _};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

use crate::config::{LogFormat, Mode, TelemetryConfig};
use crate::export_health::{is_sdk_export_noise, EXPORT_HEALTH_TARGET};
use crate::handles::{Handles, LineSinkFn};
use crate::log_store::{LogStore, LogTee};
use crate::logs::{CorrelatedFormat, NoSpanFields, ACCESS_LOG_TARGET};
use crate::prometheus::PrometheusMetrics;
use crate::propagation::Propagators;
use crate::providers::{logger_provider, meter_provider, tracer_provider};
use crate::resource::build_resource;
use crate::store::TraceStore;
use crate::Error;
use inferd_otel::semconv;
use inferd_otel::Tracer;

/// Instrumentation scope name of inferd's tracer and meter.
pub const SCOPE: &str = "inferd";

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Owns everything telemetry started. Keep it alive for the life of the process and call
/// [`TelemetryGuard::shutdown`] after draining requests; dropping it shuts down too.
#[derive(Debug)]
pub struct TelemetryGuard {
    pub(crate) mode: Mode,
    pub(crate) tracer_provider: Option<SdkTracerProvider>,
    /// inferd's tracer over the provider's SDK tracer (`None` when off).
    pub(crate) tracer: Option<Tracer>,
    pub(crate) meter_provider: Option<SdkMeterProvider>,
    pub(crate) logger_provider: Option<SdkLoggerProvider>,
    pub(crate) trace_store: Option<TraceStore>,
    pub(crate) prometheus: Option<PrometheusMetrics>,
    pub(crate) propagators: Arc<Propagators>,
    pub(crate) force_trace_header: bool,
    pub(crate) baggage_span_attributes: Arc<[String]>,
    pub(crate) genai_capture_message_content: bool,
}

/// Why shutdown did not complete cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Flushing did not finish within the deadline; remaining data was abandoned.
    #[error("telemetry flush did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// A provider reported an error while flushing (e.g. the collector is unreachable).
    #[error("telemetry flush failed: {0}")]
    Flush(String),
}

impl TelemetryGuard {
    /// The mode telemetry runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether anything beyond logs is on.
    pub fn is_enabled(&self) -> bool {
        self.mode != Mode::Off
    }

    /// The recent-trace store (`local` and `otlp` modes).
    pub fn trace_store(&self) -> Option<&TraceStore> {
        self.trace_store.as_ref()
    }

    /// Metrics in Prometheus text format for `/metrics` (`None` when off).
    pub fn prometheus_metrics(&self) -> Option<&PrometheusMetrics> {
        self.prometheus.as_ref()
    }

    /// The tracer provider (`None` when off).
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// inferd's tracer, for `inferd_otel::OtelSpan`s (`None` when off).
    pub fn tracer(&self) -> Option<Tracer> {
        self.tracer.clone()
    }

    /// The meter provider (`None` when off or when no metric reader is configured).
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter_provider.as_ref()
    }

    /// inferd's meter (`None` when metrics are off).
    pub fn meter(&self) -> Option<Meter> {
        self.meter_provider.as_ref().map(|p| p.meter(SCOPE))
    }

    /// The configured propagators.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    /// Whether prompt and completion content may be recorded on spans.
    pub fn capture_message_content(&self) -> bool {
        self.genai_capture_message_content
    }

    /// Exports everything buffered now (blocks until done; call it off the async workers).
    pub fn force_flush(&self) -> Result<(), ShutdownError> {
        let mut errors = Vec::new();
        if let Some(p) = &self.tracer_provider {
            if let Err(e) = p.force_flush() {
                errors.push(format!("traces: {e}"));
            }
        }
        if let Some(p) = &self.meter_provider {
            if let Err(e) = p.force_flush() {
                errors.push(format!("metrics: {e}"));
            }
        }
        if let Some(p) = &self.logger_provider {
            if let Err(e) = p.force_flush() {
                errors.push(format!("logs: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError::Flush(errors.join("; ")))
        }
    }

    /// Flushes and stops every provider, giving up after `deadline` (a dead collector does not
    /// hold shutdown longer). Runs on its own thread, so it is safe to call from async code;
    /// it blocks the caller for at most `deadline`.
    pub fn shutdown(mut self, deadline: Duration) -> Result<(), ShutdownError> {
        self.shutdown_inner(deadline)
    }

    fn shutdown_inner(&mut self, deadline: Duration) -> Result<(), ShutdownError> {
        let tracer = self.tracer_provider.take();
        let meter = self.meter_provider.take();
        let logger = self.logger_provider.take();
        if tracer.is_none() && meter.is_none() && logger.is_none() {
            return Ok(());
        }
        let (done, wait) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("telemetry-shutdown".into())
            .spawn(move || {
                let mut errors = Vec::new();
                if let Some(p) = tracer {
                    if let Err(e) = p.shutdown_with_timeout(deadline) {
                        errors.push(format!("traces: {e}"));
                    }
                }
                if let Some(p) = meter {
                    if let Err(e) = p.shutdown_with_timeout(deadline) {
                        errors.push(format!("metrics: {e}"));
                    }
                }
                if let Some(p) = logger {
                    if let Err(e) = p.shutdown_with_timeout(deadline) {
                        errors.push(format!("logs: {e}"));
                    }
                }
                let _ = done.send(errors);
            });
        if spawned.is_err() {
            return Err(ShutdownError::Flush(
                "cannot spawn the shutdown thread".into(),
            ));
        }
        match wait.recv_timeout(deadline + Duration::from_millis(200)) {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(ShutdownError::Flush(errors.join("; "))),
            Err(_) => Err(ShutdownError::DeadlineExceeded(deadline)),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner(Duration::from_secs(3));
    }
}

/// Starts telemetry for the whole process: installs the global tracing subscriber, and unless
/// the mode is `off`, the global tracer and meter providers and propagator. Logs go to stdout.
///
/// Call it inside a Tokio runtime when OTLP/gRPC export is configured.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, Error> {
    init_with_writer(config, std::io::stdout)
}

/// As [`init`], with log lines written to `writer` (tests capture them this way).
pub fn init_with_writer<W>(config: &TelemetryConfig, writer: W) -> Result<TelemetryGuard, Error>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (guard, dispatch) = build_with_writer(config, writer, std::io::stdout().is_terminal())?;
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|e| Error::Subscriber(e.to_string()))?;
    // Libraries that log through the `log` crate end up in the same lines. Someone else may
    // have installed a logger already; their choice stands.
    let _ = tracing_log::LogTracer::init();
    if let Some(tp) = &guard.tracer_provider {
        opentelemetry::global::set_tracer_provider(tp.clone());
        opentelemetry::global::set_text_map_propagator(Propagators::new(&config.propagators));
    }
    if let Some(mp) = &guard.meter_provider {
        opentelemetry::global::set_meter_provider(mp.clone());
    }
    Ok(guard)
}

/// Builds everything [`init`] builds without installing anything globally: the guard and a
/// [`Dispatch`] to use with `tracing::dispatcher::with_default` or `set_default`.
/// `terminal` chooses the pretty log format when the format is `auto`.
pub fn build_with_writer<W>(
    config: &TelemetryConfig,
    writer: W,
    terminal: bool,
) -> Result<(TelemetryGuard, Dispatch), Error>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::builder()
        .parse(&config.log_filter)
        .map_err(|e| Error::invalid(crate::vars::INFERD_LOG, &config.log_filter, &e.to_string()))?;
    // Colour only for pretty lines on a terminal; the layer's setting governs the event fields,
    // the format's the rest of the line.
    let (format, ansi) = match (config.log_format, terminal) {
        (LogFormat::Json, _) | (LogFormat::Auto, false) => (CorrelatedFormat::json(), false),
        (LogFormat::Pretty, _) | (LogFormat::Auto, true) => {
            (CorrelatedFormat::pretty(terminal), terminal)
        }
    };
    // The log layer writes events only. Unless the filter selects events by the span they are
    // in (`[span]` directives), it asks for no spans at all, so a span that no other layer
    // wants (every span, when telemetry is off) is never built.
    let wants_spans = config.log_filter.contains('[');
    let json = format.is_json();
    // The log layer is built last (it goes first), when the trace store its lines feed exists.
    let mut layers: Vec<BoxedLayer> = Vec::new();

    let mut guard = TelemetryGuard {
        mode: config.mode,
        tracer_provider: None,
        tracer: None,
        meter_provider: None,
        logger_provider: None,
        trace_store: None,
        prometheus: None,
        propagators: Arc::new(Propagators::new(&config.propagators)),
        force_trace_header: config.sampler.force_trace_header,
        baggage_span_attributes: config.baggage_span_attributes.clone().into(),
        genai_capture_message_content: config.genai_capture_message_content,
    };

    if config.mode != Mode::Off {
        let resource = build_resource(config);
        let (prometheus, reader) = PrometheusMetrics::new();
        guard.meter_provider = meter_provider(config, &resource, reader)?;
        guard.prometheus = Some(prometheus);
        let dropped = guard.meter().map(|m| {
            m.u64_counter(semconv::INFERD_TELEMETRY_DROPPED)
                .with_unit("{item}")
                .with_description("Telemetry items dropped because export failed")
                .build()
        });
        let (tracer_provider, store) = tracer_provider(config, &resource, dropped.clone())?;
        let tracer = tracer_provider.tracer(SCOPE);
        guard.tracer = Some(Tracer::new(tracer.clone()));
        // Spans follow their own filter (INFO by default), not the log filter: `--log warn`
        // must not switch tracing off. A level is always set, so DEBUG spans of libraries
        // cost nothing.
        let span_filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse(&config.span_filter)
            .map_err(|e| Error::invalid("span_filter", &config.span_filter, &e.to_string()))?;
        layers.push(Box::new(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // thread.id/thread.name, busy/idle times, source locations and targets on
                // every span cost allocations and are not part of docs/telemetry.md's contract.
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_location(false)
                .with_target(false)
                // Access lines are never inside a tracing span (nothing for this layer), and
                // `write_access_line` relies on the log layer alone deciding on them.
                .with_filter(span_filter.and(filter_fn(|meta| {
                    meta.is_span() || meta.target() != ACCESS_LOG_TARGET
                }))),
        ));
        guard.tracer_provider = Some(tracer_provider);
        guard.trace_store = store;

        if let Some(logger_provider) = logger_provider(config, &resource, dropped)? {
            // The log records exported are the lines the log filter lets through (so a
            // library held at `warn` there is not exported at INFO either), at most INFO.
            let export_filter = EnvFilter::builder()
                .parse(&config.log_filter)
                .map_err(|e| {
                    Error::invalid(crate::vars::INFERD_LOG, &config.log_filter, &e.to_string())
                })?;
            let bridge = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                &logger_provider,
            )
            .with_filter(
                LevelFilter::INFO
                    .and(export_filter)
                    .and(filter_fn(|meta| !is_exporter_internal(meta.target()))),
            );
            layers.push(Box::new(bridge));
            guard.logger_provider = Some(logger_provider);
        }
    }

    let writer = SharedWriter {
        writer: Arc::new(writer),
        logs: guard.trace_store.as_ref().map(|s| s.logs().clone()),
    };
    let fmt_layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .fmt_fields(NoSpanFields)
        .event_format(format)
        .with_writer(writer.clone())
        .with_filter(env_filter.and(filter_fn(move |meta| {
            // Events, and `tracing::enabled!` hints (`write_access_line` asks with one).
            (wants_spans || !meta.is_span()) && !is_sdk_export_noise(meta)
        })));
    layers.insert(0, Box::new(fmt_layer));

    // `write_access_line` writes JSON lines to the same writer, unless the OTLP logs bridge
    // needs every line as a tracing event.
    let lines = (json && guard.logger_provider.is_none()).then(|| {
        Box::new(move |line: &[u8]| {
            let _ = writer.make_writer().write_all(line);
        }) as LineSinkFn
    });
    layers.push(Box::new(Handles::new(lines).with_filter(LevelFilter::OFF)));

    let subscriber = Registry::default().with(layers);
    Ok((guard, Dispatch::new(subscriber)))
}

/// The log writer, shared by the log layer and the access lines (`Handles::lines`); in the
/// modes that keep traces, each line also goes to the trace store's [`LogStore`].
struct SharedWriter<W> {
    writer: Arc<W>,
    logs: Option<LogStore>,
}

impl<W> Clone for SharedWriter<W> {
    fn clone(&self) -> Self {
        SharedWriter {
            writer: Arc::clone(&self.writer),
            logs: self.logs.clone(),
        }
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for SharedWriter<W> {
    type Writer = LogTee<'a, W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        LogTee {
            inner: self.writer.make_writer(),
            store: self.logs.as_ref(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LogTee {
            inner: self.writer.make_writer_for(meta),
            store: self.logs.as_ref(),
        }
    }
}

/// Log targets that must not feed the OTLP log exporter, or its own traffic would loop back.
fn is_exporter_internal(target: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "opentelemetry",
        "hyper",
        "h2",
        "tonic",
        "tower",
        "reqwest",
        "rustls",
        EXPORT_HEALTH_TARGET,
    ];
    PREFIXES.iter().any(|p| target.starts_with(p))
}

/// Builds telemetry in `mode` with default settings and logs discarded, for unit tests.
#[cfg(test)]
pub(crate) fn build_for_test(mode: Mode) -> (TelemetryGuard, Dispatch) {
    let config = TelemetryConfig {
        mode,
        ..TelemetryConfig::default()
    };
    match build_with_writer(&config, std::io::sink, false) {
        Ok(built) => built,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OtlpProtocol;

    fn otlp(endpoint: &str, protocol: OtlpProtocol) -> TelemetryConfig {
        let mut config = TelemetryConfig {
            mode: Mode::Otlp,
            ..TelemetryConfig::default()
        };
        for c in [
            &mut config.otlp_traces,
            &mut config.otlp_metrics,
            &mut config.otlp_logs,
        ] {
            c.endpoint = endpoint.to_owned();
            c.protocol = protocol;
        }
        config
    }

    fn start_error(config: &TelemetryConfig) -> String {
        let _serial = crate::serial_dispatch();
        match build_with_writer(config, std::io::sink, false) {
            Ok(_) => panic!("started"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn grpc_without_a_runtime_is_refused_instead_of_panicking() {
        let e = start_error(&otlp("http://127.0.0.1:4317", OtlpProtocol::Grpc));
        assert!(e.contains("Tokio runtime"), "{e}");
    }

    #[test]
    fn console_and_local_modes_build_what_they_promise() {
        let (guard, _) = build_for_test(Mode::Console);
        assert!(guard.tracer_provider().is_some() && guard.trace_store().is_none());
        assert!(guard.prometheus_metrics().is_some());
        let (guard, _) = build_for_test(Mode::Local);
        assert_eq!(guard.mode(), Mode::Local);
        assert!(guard.trace_store().is_some() && guard.logger_provider.is_none());
    }

    #[test]
    fn off_mode_builds_no_provider_and_no_layer() {
        let (guard, _dispatch) = build_for_test(Mode::Off);
        assert!(!guard.is_enabled());
        assert!(guard.tracer_provider().is_none());
        assert!(guard.meter_provider().is_none());
        assert!(guard.trace_store().is_none());
        assert!(crate::http_layer(&guard).is_none());
        assert!(guard.shutdown(Duration::from_millis(10)).is_ok());
    }
}
