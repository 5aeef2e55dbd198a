//! The providers behind each signal: tracer (recent-trace store, OTLP or console export),
//! meter (Prometheus reader, OTLP or console export) and logger (OTLP export), built from the
//! configuration with their exporters wrapped for failure reporting. OTLP goes over TLS to an
//! `https://` endpoint (see the `tls` module).

mod tls;
mod transport_errors;

use opentelemetry::metrics::Counter;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::{Exporter, Mode, OtlpProtocol, OtlpSignalConfig, Signal, TelemetryConfig};
use crate::console::{ConsoleMetricExporter, ConsoleSpanExporter};
use crate::export_health::{
    ExportHealth, MonitoredLogExporter, MonitoredMetricExporter, MonitoredSpanExporter,
};
use crate::prometheus::SharedReader;
use crate::sampler::build_sampler;
use crate::store::{TraceStore, TraceStoreProcessor};
use crate::Error;
use tls::TlsFiles;
use transport_errors::{LastTransportError, ReportingHttpClient, WithTransportError};

fn exporter_error(signal: Signal, c: &OtlpSignalConfig, reason: impl ToString) -> Error {
    Error::Exporter {
        signal: signal.as_str(),
        endpoint: c.endpoint.clone(),
        reason: reason.to_string(),
    }
}

/// How one signal's exporter reaches its endpoint: the TLS files of an `https://` endpoint,
/// and where its HTTP client records transport errors.
struct Transport {
    signal: Signal,
    tls: Option<TlsFiles>,
    last_error: LastTransportError,
}

impl Transport {
    /// Checks what can be checked before building the exporter (the TLS files, and for gRPC
    /// a Tokio runtime to run the channel on).
    fn new(signal: Signal, c: &OtlpSignalConfig) -> Result<Self, Error> {
        if c.protocol == OtlpProtocol::Grpc && tokio::runtime::Handle::try_current().is_err() {
            return Err(exporter_error(
                signal,
                c,
                "OTLP/gRPC export needs a Tokio runtime: call init inside one",
            ));
        }
        Ok(Transport {
            signal,
            tls: TlsFiles::load(c)?,
            last_error: LastTransportError::default(),
        })
    }

    /// A tonic exporter builder with the TLS settings, for an `https://` endpoint.
    fn grpc<B: WithTonicConfig>(&self, builder: B) -> B {
        match &self.tls {
            Some(tls) => builder.with_tls_config(tls.tonic()),
            None => builder,
        }
    }

    /// The OTLP/HTTP client, with the TLS settings for an `https://` endpoint.
    fn http_client(&self, c: &OtlpSignalConfig) -> Result<ReportingHttpClient, Error> {
        let client =
            tls::http_client(c.timeout, self.tls.as_ref()).map_err(|e| self.build_error(c, e))?;
        Ok(ReportingHttpClient::new(client, self.last_error.clone()))
    }

    /// Why the exporter could not be built; with TLS, the files used, as the TLS stack's
    /// reasons (e.g. a key that does not match its certificate) do not name them.
    fn build_error(&self, c: &OtlpSignalConfig, reason: impl ToString) -> Error {
        let mut reason = reason.to_string();
        let identity = c
            .client_identity
            .iter()
            .flat_map(|id| [&id.certificate, &id.key]);
        let files: Vec<String> = c
            .certificate
            .iter()
            .chain(identity)
            .map(|file| format!("{}={}", file.variable, file.path.display()))
            .collect();
        if self.tls.is_some() && !files.is_empty() {
            reason = format!("{reason} (TLS files: {})", files.join(", "));
        }
        exporter_error(self.signal, c, reason)
    }

    /// `built`, with the failures of its exports explained by the client's transport errors.
    fn explained<E>(&self, built: E) -> WithTransportError<E> {
        WithTransportError::new(built, self.last_error.clone())
    }
}

fn grpc_metadata(
    headers: &[(String, String)],
) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map)
}

pub(crate) fn tracer_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    dropped: Option<Counter<u64>>,
) -> Result<(SdkTracerProvider, Option<TraceStore>), Error> {
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(build_sampler(&config.sampler));
    let mut store = None;
    if matches!(config.mode, Mode::Local | Mode::Otlp) {
        let s = TraceStore::new(config.trace_store);
        builder = builder.with_span_processor(TraceStoreProcessor::new(s.clone()));
        store = Some(s);
    }
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(config.batch.schedule_delay)
        .with_max_queue_size(config.batch.max_queue_size)
        .with_max_export_batch_size(config.batch.max_export_batch_size)
        .build();
    // OTEL_BSP_EXPORT_TIMEOUT bounds each export through the exporter's own timeout.
    let mut traces = config.otlp_traces.clone();
    traces.timeout = traces.timeout.min(config.batch.export_timeout);
    let c = &traces;
    let exporter = match config.mode {
        Mode::Otlp => c.exporter,
        Mode::Console => Exporter::Console,
        Mode::Off | Mode::Local => Exporter::None,
    };
    match exporter {
        Exporter::Otlp => {
            let transport = Transport::new(Signal::Traces, c)?;
            let built = match c.protocol {
                OtlpProtocol::Grpc => transport
                    .grpc(opentelemetry_otlp::SpanExporter::builder().with_tonic())
                    .with_endpoint(c.endpoint.clone())
                    .with_timeout(c.timeout)
                    .with_metadata(grpc_metadata(&c.headers))
                    .build(),
                OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(transport.http_client(c)?)
                    .with_endpoint(c.endpoint.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_timeout(c.timeout)
                    .with_headers(c.headers.iter().cloned().collect())
                    .build(),
            }
            .map_err(|e| transport.build_error(c, e))?;
            let health = ExportHealth::new(Signal::Traces, &c.endpoint, dropped);
            let exporter = MonitoredSpanExporter::new(transport.explained(built), health);
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build();
            builder = builder.with_span_processor(processor);
        }
        Exporter::Console => {
            let processor = BatchSpanProcessor::builder(ConsoleSpanExporter)
                .with_batch_config(batch)
                .build();
            builder = builder.with_span_processor(processor);
        }
        Exporter::None => {}
    }
    Ok((builder.build(), store))
}

pub(crate) fn meter_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    prometheus: SharedReader,
) -> Result<Option<SdkMeterProvider>, Error> {
    let c = &config.otlp_metrics;
    let exporter = match config.mode {
        Mode::Otlp => c.exporter,
        Mode::Console => Exporter::Console,
        Mode::Off | Mode::Local => Exporter::None,
    };
    let builder = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus);
    let builder = match exporter {
        Exporter::Otlp => {
            let transport = Transport::new(Signal::Metrics, c)?;
            let built = match c.protocol {
                OtlpProtocol::Grpc => transport
                    .grpc(opentelemetry_otlp::MetricExporter::builder().with_tonic())
                    .with_endpoint(c.endpoint.clone())
                    .with_timeout(c.timeout)
                    .with_metadata(grpc_metadata(&c.headers))
                    .build(),
                OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(transport.http_client(c)?)
                    .with_endpoint(c.endpoint.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_timeout(c.timeout)
                    .with_headers(c.headers.iter().cloned().collect())
                    .build(),
            }
            .map_err(|e| transport.build_error(c, e))?;
            // The dropped counter lives in this provider, so the metrics exporter counts its
            // own failures only in the log, not in itself.
            let health = ExportHealth::new(Signal::Metrics, &c.endpoint, None);
            let exporter = MonitoredMetricExporter::new(transport.explained(built), health);
            let reader = PeriodicReader::builder(exporter)
                .with_interval(config.metric_export_interval)
                .build();
            builder.with_reader(reader)
        }
        Exporter::Console => {
            let reader = PeriodicReader::builder(ConsoleMetricExporter)
                .with_interval(config.metric_export_interval)
                .build();
            builder.with_reader(reader)
        }
        // Local mode: /metrics only.
        Exporter::None => builder,
    };
    Ok(Some(builder.build()))
}

pub(crate) fn logger_provider(
    config: &TelemetryConfig,
    resource: &Resource,
    dropped: Option<Counter<u64>>,
) -> Result<Option<SdkLoggerProvider>, Error> {
    let c = &config.otlp_logs;
    if config.mode != Mode::Otlp || c.exporter != Exporter::Otlp {
        return Ok(None);
    }
    let transport = Transport::new(Signal::Logs, c)?;
    let built = match c.protocol {
        OtlpProtocol::Grpc => transport
            .grpc(opentelemetry_otlp::LogExporter::builder().with_tonic())
            .with_endpoint(c.endpoint.clone())
            .with_timeout(c.timeout)
            .with_metadata(grpc_metadata(&c.headers))
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_http_client(transport.http_client(c)?)
            .with_endpoint(c.endpoint.clone())
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(c.timeout)
            .with_headers(c.headers.iter().cloned().collect())
            .build(),
    }
    .map_err(|e| transport.build_error(c, e))?;
    let health = ExportHealth::new(Signal::Logs, &c.endpoint, dropped);
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(MonitoredLogExporter::new(
            transport.explained(built),
            health,
        ))
        .build();
    Ok(Some(provider))
}
