//! Telemetry configuration: what the operator asked for, read once at start-up from an injected
//! environment (standard `OTEL_*` variables and inferd's `INFERD_*` twins) and validated.

use std::path::PathBuf;
use std::time::Duration;

use inferd_otel::EnvSource;

use crate::propagation::percent_decode;
use crate::Error;

/// What telemetry does at all (crates/telemetry/README.md, "Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Nothing but the log layer is installed: no provider, no span objects.
    Off,
    /// Sampled spans go to the bounded in-memory store only.
    #[default]
    Local,
    /// As `Local`, plus OTLP export of traces, metrics and logs.
    Otlp,
    /// Spans and metrics printed as JSON lines to stdout.
    Console,
}

impl Mode {
    const ACCEPTED: &'static str = "off, local, otlp or console";

    fn parse(variable: &str, value: &str) -> Result<Self, Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Mode::Off),
            "local" => Ok(Mode::Local),
            "otlp" => Ok(Mode::Otlp),
            "console" => Ok(Mode::Console),
            _ => Err(Error::invalid(variable, value, Self::ACCEPTED)),
        }
    }
}

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (default port 4318).
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(variable: &str, value: &str) -> Result<Self, Error> {
        match value.trim() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            _ => Err(Error::invalid(variable, value, "grpc or http/protobuf")),
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// One signal kind, used to pick per-signal settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// `traces`, `metrics` or `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
}

/// Where one signal is exported (OTEL_TRACES_EXPORTER and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exporter {
    /// OTLP to the configured endpoint.
    #[default]
    Otlp,
    /// JSON lines to stdout.
    Console,
    /// Not exported.
    None,
}

impl Exporter {
    fn parse(variable: &str, value: &str) -> Result<Self, Error> {
        match value.trim() {
            "otlp" => Ok(Exporter::Otlp),
            "console" => Ok(Exporter::Console),
            "none" => Ok(Exporter::None),
            _ => Err(Error::invalid(variable, value, "otlp, console or none")),
        }
    }
}

/// Settings of the OTLP exporter for one signal, with the per-signal variables already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSignalConfig {
    /// Where to export, always with its scheme: `https://` is TLS, `http://` plaintext. For gRPC
    /// the collector address, for HTTP the full URL (`.../v1/traces`).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: OtlpProtocol,
    /// Extra headers (gRPC metadata) sent with each export.
    pub headers: Vec<(String, String)>,
    /// Time allowed for one export.
    pub timeout: Duration,
    /// OTEL_EXPORTER_OTLP_INSECURE: the scheme a gRPC endpoint given as `host:port` got
    /// (`http://` when true, `https://` when false); already applied to `endpoint`, and
    /// without effect on an endpoint given with a scheme.
    pub insecure: bool,
    /// OTEL_EXPORTER_OTLP_CERTIFICATE: the CA certificates the collector's certificate must
    /// chain to, instead of the system's roots. Used with `https://` endpoints only.
    pub certificate: Option<TlsFile>,
    /// OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY: the certificate inferd presents
    /// (mTLS). Used with `https://` endpoints only.
    pub client_identity: Option<ClientIdentity>,
    /// The exporter chosen for this signal.
    pub exporter: Exporter,
}

/// A PEM file named by a configuration variable, read when the exporter is built: a file that
/// cannot be read or holds no usable PEM stops start-up with an error naming the variable and
/// the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFile {
    /// The variable that named it, e.g. `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`.
    pub variable: String,
    /// The path, as given.
    pub path: PathBuf,
}

/// The client certificate and its private key for mTLS: both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM certificate (chain), leaf first.
    pub certificate: TlsFile,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: TlsFile,
}

/// How root spans are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Whether a parent's decision wins (the `parentbased_*` samplers; default true).
    pub parent_based: bool,
    /// Fraction of new traces to sample (0.0 to 1.0).
    pub ratio: f64,
    /// Whether `X-Force-Trace: true` forces sampling of a new trace.
    pub force_trace_header: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            parent_based: true,
            ratio: 1.0,
            force_trace_header: true,
        }
    }
}

/// Batch span processor settings (OTEL_BSP_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Delay between two exports.
    pub schedule_delay: Duration,
    /// Time allowed for one export.
    pub export_timeout: Duration,
    /// Spans buffered before new ones are dropped.
    pub max_queue_size: usize,
    /// Spans per export.
    pub max_export_batch_size: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            schedule_delay: Duration::from_millis(5_000),
            export_timeout: Duration::from_millis(30_000),
            max_queue_size: 2_048,
            max_export_batch_size: 512,
        }
    }
}

/// Capacity of the in-memory recent-trace store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceStoreConfig {
    /// Traces kept; the oldest is evicted first.
    pub max_traces: usize,
    /// Spans kept across all traces.
    pub max_spans: usize,
}

impl Default for TraceStoreConfig {
    fn default() -> Self {
        TraceStoreConfig {
            max_traces: 256,
            max_spans: 16_384,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON lines when stdout is not a terminal, pretty when it is.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Which propagators are active (OTEL_PROPAGATORS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropagatorConfig {
    /// W3C Trace Context (`tracecontext`).
    pub trace_context: bool,
    /// W3C Baggage (`baggage`).
    pub baggage: bool,
}

impl Default for PropagatorConfig {
    fn default() -> Self {
        PropagatorConfig {
            trace_context: true,
            baggage: true,
        }
    }
}

/// Everything telemetry needs, built once at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// What telemetry does at all.
    pub mode: Mode,
    /// `service.name` (OTEL_SERVICE_NAME, default `inferd`).
    pub service_name: String,
    /// `service.version`; the binary sets its own version here.
    pub service_version: String,
    /// `deployment.environment.name`, when given.
    pub deployment_environment: Option<String>,
    /// OTEL_RESOURCE_ATTRIBUTES, decoded.
    pub resource_attributes: Vec<(String, String)>,
    /// OTLP settings for traces.
    pub otlp_traces: OtlpSignalConfig,
    /// OTLP settings for metrics.
    pub otlp_metrics: OtlpSignalConfig,
    /// OTLP settings for logs.
    pub otlp_logs: OtlpSignalConfig,
    /// Sampling.
    pub sampler: SamplerConfig,
    /// Batch span processor settings.
    pub batch: BatchConfig,
    /// Interval between two metric exports (OTEL_METRIC_EXPORT_INTERVAL).
    pub metric_export_interval: Duration,
    /// Active propagators.
    pub propagators: PropagatorConfig,
    /// Whether prompts and completions may be recorded (off by default).
    pub genai_capture_message_content: bool,
    /// Recent-trace store capacity.
    pub trace_store: TraceStoreConfig,
    /// Baggage keys that become span attributes on the HTTP server span.
    pub baggage_span_attributes: Vec<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directives (EnvFilter syntax), default `info`.
    pub log_filter: String,
    /// Which `tracing` spans become OpenTelemetry spans (EnvFilter syntax), default `info`.
    /// Independent of `log_filter`, so `--log warn` does not switch tracing off; an embedding
    /// program narrows it to keep a library's own instrumentation out of traces
    /// (e.g. `info,some_crate=off`).
    pub span_filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        let otlp = || OtlpSignalConfig {
            endpoint: OtlpProtocol::Grpc.default_endpoint().to_owned(),
            protocol: OtlpProtocol::Grpc,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            insecure: false,
            certificate: None,
            client_identity: None,
            exporter: Exporter::Otlp,
        };
        TelemetryConfig {
            mode: Mode::Local,
            service_name: "inferd".to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            deployment_environment: None,
            resource_attributes: Vec::new(),
            otlp_traces: otlp(),
            otlp_metrics: otlp(),
            otlp_logs: otlp(),
            sampler: SamplerConfig::default(),
            batch: BatchConfig::default(),
            metric_export_interval: Duration::from_secs(60),
            propagators: PropagatorConfig::default(),
            genai_capture_message_content: false,
            trace_store: TraceStoreConfig::default(),
            baggage_span_attributes: Vec::new(),
            log_format: LogFormat::Auto,
            log_filter: "info".to_owned(),
            span_filter: "info".to_owned(),
        }
    }
}

/// inferd's own variable names (each also a CLI flag, see [`crate::TelemetryArgs`]).
pub mod vars {
    /// off | local | otlp | console.
    pub const INFERD_TELEMETRY: &str = "INFERD_TELEMETRY";
    /// true | false: honour `X-Force-Trace: true`.
    pub const INFERD_FORCE_TRACE_HEADER: &str = "INFERD_FORCE_TRACE_HEADER";
    /// Recent-trace store capacity in traces.
    pub const INFERD_TRACE_STORE_TRACES: &str = "INFERD_TRACE_STORE_TRACES";
    /// Recent-trace store capacity in spans.
    pub const INFERD_TRACE_STORE_SPANS: &str = "INFERD_TRACE_STORE_SPANS";
    /// Comma-separated baggage keys that become span attributes.
    pub const INFERD_BAGGAGE_SPAN_ATTRIBUTES: &str = "INFERD_BAGGAGE_SPAN_ATTRIBUTES";
    /// json | pretty | auto.
    pub const INFERD_LOG_FORMAT: &str = "INFERD_LOG_FORMAT";
    /// Log filter directives, e.g. `info,inferd_engine=debug`.
    pub const INFERD_LOG: &str = "INFERD_LOG";
    /// `deployment.environment.name`.
    pub const INFERD_DEPLOYMENT_ENVIRONMENT: &str = "INFERD_DEPLOYMENT_ENVIRONMENT";
}

/// Reads values and turns them into typed settings with errors naming the variable.
struct Reader<'a> {
    env: &'a dyn EnvSource,
}

impl Reader<'_> {
    /// A set, non-empty value (the OTel spec treats empty as unset).
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).filter(|v| !v.trim().is_empty())
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, Error> {
        self.get(key)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Error::invalid(key, &v, "true or false")),
            })
            .transpose()
    }

    fn millis(&self, key: &str) -> Result<Option<Duration>, Error> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| Error::invalid(key, &v, "a whole number of milliseconds"))
            })
            .transpose()
    }

    fn count(&self, key: &str) -> Result<Option<usize>, Error> {
        self.get(key)
            .map(|v| match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Error::invalid(key, &v, "a whole number greater than 0")),
            })
            .transpose()
    }

    fn pairs(&self, key: &str) -> Result<Option<Vec<(String, String)>>, Error> {
        self.get(key)
            .map(|v| parse_key_value_list(&v).ok_or_else(|| Error::invalid(key, &v, KV_EXPECTED)))
            .transpose()
    }
}

const KV_EXPECTED: &str = "comma-separated key=value pairs (values percent-encoded)";

/// Parses `k1=v1,k2=v2` with percent-decoding, as OTEL_RESOURCE_ATTRIBUTES and
/// OTEL_EXPORTER_OTLP_HEADERS define it. `None` when a member has no `=` or an empty key.
fn parse_key_value_list(value: &str) -> Option<Vec<(String, String)>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .map(|member| {
            let (key, val) = member.split_once('=')?;
            let key = percent_decode(key.trim())?;
            if key.is_empty() {
                return None;
            }
            Some((key, percent_decode(val.trim())?))
        })
        .collect()
}

impl TelemetryConfig {
    /// Builds the configuration from `env`, applying these rules: an explicit
    /// `INFERD_TELEMETRY` wins; else an OTLP endpoint selects `otlp`, `OTEL_SDK_DISABLED=true`
    /// selects `off`, and otherwise the mode is `local`.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use inferd_telemetry::{Mode, TelemetryConfig};
    /// let env: HashMap<String, String> =
    ///     [("OTEL_EXPORTER_OTLP_ENDPOINT".into(), "http://collector:4317".into())].into();
    /// let config = TelemetryConfig::from_env(&env).unwrap();
    /// assert_eq!(config.mode, Mode::Otlp);
    /// ```
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, Error> {
        let r = Reader { env };
        let mut config = TelemetryConfig::default();

        let any_endpoint = r.get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || [Signal::Traces, Signal::Metrics, Signal::Logs]
                .iter()
                .any(|s| {
                    r.get(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", s.upper()))
                        .is_some()
                });
        let sdk_disabled = r.bool("OTEL_SDK_DISABLED")?.unwrap_or(false);
        config.mode = match r.get(vars::INFERD_TELEMETRY) {
            Some(v) => Mode::parse(vars::INFERD_TELEMETRY, &v)?,
            None if any_endpoint => Mode::Otlp,
            None if sdk_disabled => Mode::Off,
            None => Mode::Local,
        };

        config.resource_attributes = r.pairs("OTEL_RESOURCE_ATTRIBUTES")?.unwrap_or_default();
        if let Some(name) = r.get("OTEL_SERVICE_NAME") {
            config.service_name = name;
        } else if let Some((_, name)) = config
            .resource_attributes
            .iter()
            .find(|(k, _)| k == inferd_otel::semconv::SERVICE_NAME)
        {
            config.service_name = name.clone();
        }
        config.deployment_environment = r.get(vars::INFERD_DEPLOYMENT_ENVIRONMENT);

        config.otlp_traces = otlp_signal(&r, Signal::Traces)?;
        config.otlp_metrics = otlp_signal(&r, Signal::Metrics)?;
        config.otlp_logs = otlp_signal(&r, Signal::Logs)?;

        config.sampler = sampler(&r)?;
        config.batch = batch(&r)?;
        if let Some(interval) = r.millis("OTEL_METRIC_EXPORT_INTERVAL")? {
            config.metric_export_interval = interval;
        }
        if let Some(v) = r.get("OTEL_PROPAGATORS") {
            config.propagators = propagators(&v)?;
        }
        config.genai_capture_message_content = r
            .bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")?
            .unwrap_or(false);

        if let Some(n) = r.count(vars::INFERD_TRACE_STORE_TRACES)? {
            config.trace_store.max_traces = n;
        }
        if let Some(n) = r.count(vars::INFERD_TRACE_STORE_SPANS)? {
            config.trace_store.max_spans = n;
        }
        if let Some(v) = r.get(vars::INFERD_BAGGAGE_SPAN_ATTRIBUTES) {
            config.baggage_span_attributes = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = r.get(vars::INFERD_LOG_FORMAT) {
            config.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                "auto" => LogFormat::Auto,
                _ => {
                    return Err(Error::invalid(
                        vars::INFERD_LOG_FORMAT,
                        &v,
                        "json, pretty or auto",
                    ))
                }
            };
        }
        if let Some(v) = r.get(vars::INFERD_LOG) {
            if tracing_subscriber::EnvFilter::builder().parse(&v).is_err() {
                return Err(Error::invalid(
                    vars::INFERD_LOG,
                    &v,
                    "a level (error, warn, info, debug, trace) or filter directives like info,inferd_engine=debug",
                ));
            }
            config.log_filter = v;
        }
        Ok(config)
    }

    /// The OTLP settings of one signal.
    pub fn otlp(&self, signal: Signal) -> &OtlpSignalConfig {
        match signal {
            Signal::Traces => &self.otlp_traces,
            Signal::Metrics => &self.otlp_metrics,
            Signal::Logs => &self.otlp_logs,
        }
    }
}

fn otlp_signal(r: &Reader<'_>, signal: Signal) -> Result<OtlpSignalConfig, Error> {
    let up = signal.upper();
    let per = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{up}_{suffix}");
    let pick = |suffix: &str| -> (String, Option<String>) {
        let specific = per(suffix);
        match r.get(&specific) {
            Some(v) => (specific, Some(v)),
            None => {
                let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
                let v = r.get(&general);
                (general, v)
            }
        }
    };

    let protocol = match pick("PROTOCOL") {
        (var, Some(v)) => OtlpProtocol::parse(&var, &v)?,
        (_, None) => OtlpProtocol::default(),
    };
    let insecure = match pick("INSECURE") {
        (var, Some(_)) => r.bool(&var)?.unwrap_or(false),
        (_, None) => false,
    };
    let endpoint = match (
        r.get(&per("ENDPOINT")),
        r.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        // A per-signal endpoint is used as given.
        (Some(v), _) => endpoint_url(&per("ENDPOINT"), v, protocol, insecure)?,
        // The general endpoint is a base URL: OTLP/HTTP appends the signal's path.
        (None, Some(v)) => {
            let base = endpoint_url("OTEL_EXPORTER_OTLP_ENDPOINT", v, protocol, insecure)?;
            match protocol {
                OtlpProtocol::Grpc => base,
                OtlpProtocol::HttpProtobuf => {
                    format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
                }
            }
        }
        (None, None) => match protocol {
            OtlpProtocol::Grpc => protocol.default_endpoint().to_owned(),
            OtlpProtocol::HttpProtobuf => {
                format!("{}/v1/{}", protocol.default_endpoint(), signal.as_str())
            }
        },
    };
    let mut headers = r.pairs("OTEL_EXPORTER_OTLP_HEADERS")?.unwrap_or_default();
    for (k, v) in r.pairs(&per("HEADERS"))?.unwrap_or_default() {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    let timeout = match pick("TIMEOUT") {
        (var, Some(v)) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| Error::invalid(&var, &v, "a whole number of milliseconds"))?,
        (_, None) => Duration::from_secs(10),
    };
    let tls_file = |suffix: &str| match pick(suffix) {
        (variable, Some(path)) => Some(TlsFile {
            variable,
            path: PathBuf::from(path),
        }),
        (_, None) => None,
    };
    let certificate = tls_file("CERTIFICATE");
    let client_identity = match (tls_file("CLIENT_CERTIFICATE"), tls_file("CLIENT_KEY")) {
        (Some(certificate), Some(key)) => Some(ClientIdentity { certificate, key }),
        (None, None) => None,
        (Some(given), None) => return Err(half_identity(&given, "CLIENT_KEY", &per("CLIENT_KEY"))),
        (None, Some(given)) => {
            let twin = "CLIENT_CERTIFICATE";
            return Err(half_identity(&given, twin, &per(twin)));
        }
    };
    let exporter_var = format!("OTEL_{up}_EXPORTER");
    let exporter = match r.get(&exporter_var) {
        Some(v) => Exporter::parse(&exporter_var, &v)?,
        None => Exporter::Otlp,
    };
    Ok(OtlpSignalConfig {
        endpoint,
        protocol,
        headers,
        timeout,
        insecure,
        certificate,
        client_identity,
        exporter,
    })
}

/// mTLS needs the client certificate and its key: `given` is set, but neither variable of its
/// twin (`OTEL_EXPORTER_OTLP_{twin}` or the per-signal `per_signal_twin`) is.
fn half_identity(given: &TlsFile, twin: &str, per_signal_twin: &str) -> Error {
    Error::invalid(
        &given.variable,
        &given.path.to_string_lossy(),
        &format!(
            "OTEL_EXPORTER_OTLP_{twin} (or {per_signal_twin}) set as well: mTLS needs both the client certificate and its private key"
        ),
    )
}

/// The endpoint URL of `variable`, with its scheme. OTLP/HTTP takes the scheme from the URL
/// alone. A gRPC endpoint may also be `host:port`; OTEL_EXPORTER_OTLP_INSECURE then chooses
/// plaintext (`true`) or TLS (`false`, the default), as the OTLP exporter specification says.
fn endpoint_url(
    variable: &str,
    value: String,
    protocol: OtlpProtocol,
    insecure: bool,
) -> Result<String, Error> {
    let trimmed = value.trim();
    // A `://` after a path, query or fragment delimiter does not start a scheme.
    let has_scheme = trimmed
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    let url = match (has_scheme, protocol) {
        (true, _) => trimmed.to_owned(),
        (false, OtlpProtocol::Grpc) if insecure => format!("http://{trimmed}"),
        (false, OtlpProtocol::Grpc) => format!("https://{trimmed}"),
        (false, OtlpProtocol::HttpProtobuf) => String::new(),
    };
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.host().is_some_and(|h| !h.is_empty()));
    if valid {
        return Ok(url);
    }
    let expected = match protocol {
        OtlpProtocol::Grpc => {
            "an http:// or https:// URL such as https://collector:4317, or host:port (TLS unless OTEL_EXPORTER_OTLP_INSECURE=true)"
        }
        OtlpProtocol::HttpProtobuf => {
            "an http:// or https:// URL such as https://collector:4318 (OTLP/HTTP takes TLS or plaintext from the scheme)"
        }
    };
    Err(Error::invalid(variable, &value, expected))
}

fn sampler(r: &Reader<'_>) -> Result<SamplerConfig, Error> {
    const VAR: &str = "OTEL_TRACES_SAMPLER";
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    let mut config = SamplerConfig::default();
    let ratio_arg = r
        .get(ARG)
        .map(|v| match v.trim().parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(Error::invalid(ARG, &v, "a number from 0 to 1")),
        })
        .transpose()?;
    let kind = r
        .get(VAR)
        .unwrap_or_else(|| "parentbased_traceidratio".to_owned());
    let (parent_based, ratio) = match kind.trim() {
        "always_on" => (false, 1.0),
        "always_off" => (false, 0.0),
        "traceidratio" => (false, ratio_arg.unwrap_or(1.0)),
        "parentbased_always_on" => (true, 1.0),
        "parentbased_always_off" => (true, 0.0),
        "parentbased_traceidratio" => (true, ratio_arg.unwrap_or(1.0)),
        _ => {
            return Err(Error::invalid(
                VAR,
                &kind,
                "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
            ))
        }
    };
    config.parent_based = parent_based;
    config.ratio = ratio;
    if let Some(force) = r.bool(vars::INFERD_FORCE_TRACE_HEADER)? {
        config.force_trace_header = force;
    }
    Ok(config)
}

fn batch(r: &Reader<'_>) -> Result<BatchConfig, Error> {
    let mut b = BatchConfig::default();
    if let Some(d) = r.millis("OTEL_BSP_SCHEDULE_DELAY")? {
        b.schedule_delay = d;
    }
    if let Some(d) = r.millis("OTEL_BSP_EXPORT_TIMEOUT")? {
        b.export_timeout = d;
    }
    if let Some(n) = r.count("OTEL_BSP_MAX_QUEUE_SIZE")? {
        b.max_queue_size = n;
    }
    if let Some(n) = r.count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
        b.max_export_batch_size = n;
    }
    // The spec requires the batch to fit in the queue.
    b.max_export_batch_size = b.max_export_batch_size.min(b.max_queue_size);
    Ok(b)
}

fn propagators(value: &str) -> Result<PropagatorConfig, Error> {
    let mut p = PropagatorConfig {
        trace_context: false,
        baggage: false,
    };
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "tracecontext" => p.trace_context = true,
            "baggage" => p.baggage = true,
            "none" => {}
            _ => {
                return Err(Error::invalid(
                    "OTEL_PROPAGATORS",
                    value,
                    "a comma-separated list of tracecontext, baggage or none",
                ))
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_proptests.rs"]
mod proptests;
