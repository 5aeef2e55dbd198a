//! OTLP export over TLS to real receivers started here, with certificates made here (rcgen):
//! OTLP/gRPC (tonic with TLS) and OTLP/HTTP (axum over tokio-rustls). Spans and metrics arrive
//! checked against a CA file (per-signal files win over the general one), a gRPC endpoint
//! without a scheme is TLS unless OTEL_EXPORTER_OTLP_INSECURE=true, mTLS receivers take a
//! client with its certificate and refuse one without, a wrong CA delivers nothing with one
//! warning per exporter, and TLS files that cannot be used stop start-up. One test installs
//! the global subscriber (export failures are logged from the SDK's threads), hence its own
//! test binary.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use inferd_telemetry::{
    build_with_writer, init_with_writer, Error, ShutdownError, TelemetryConfig, TelemetryGuard,
    EXPORT_HEALTH_TARGET,
};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{env, grpc_receiver, Captured};
use tokio_rustls::rustls;

/// A CA, a server certificate it signed for `localhost` and `127.0.0.1`, a client
/// certificate it signed, and an unrelated CA, written as PEM files to a directory of their
/// own (removed on drop).
struct Pki {
    dir: PathBuf,
    server_certificate: String,
    server_key: String,
    ca: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "inferd-otlp-tls-{}-{name}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, ca_issuer) = certificate_authority("inferd test CA");
        let (other_ca, _) = certificate_authority("some other CA");
        let (server_certificate, server_key) = signed(
            &ca_issuer,
            &["localhost", "127.0.0.1"],
            "inferd test collector",
        );
        let (client_certificate, client_key) = signed(&ca_issuer, &[], "inferd test client");
        let pki = Pki {
            dir,
            server_certificate,
            server_key,
            ca,
        };
        pki.write("ca.pem", &pki.ca);
        pki.write("other-ca.pem", &other_ca);
        pki.write("client.pem", &client_certificate);
        pki.write("client-key.pem", &client_key);
        pki
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.join(name), contents).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    (certificate.pem(), Issuer::new(params, key))
}

/// A certificate signed by `issuer` for `names` (none for a client), and its key, as PEM.
fn signed(issuer: &Issuer<'static, KeyPair>, names: &[&str], subject: &str) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, subject);
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, issuer).unwrap();
    (certificate.pem(), key.serialize_pem())
}

/// Names of what a receiver got: `span NAME` and `metric NAME`.
#[derive(Clone, Default)]
struct Arrived(Arc<Mutex<Vec<String>>>);

impl Arrived {
    fn traces(&self, request: ExportTraceServiceRequest) {
        let mut names = self.0.lock().unwrap();
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                names.extend(ss.spans.into_iter().map(|s| format!("span {}", s.name)));
            }
        }
    }

    fn metrics(&self, request: ExportMetricsServiceRequest) {
        let mut names = self.0.lock().unwrap();
        for rm in request.resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| format!("metric {}", m.name)));
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s until `name` arrived.
    async fn wait_for(&self, name: &str) {
        for _ in 0..200 {
            if self.names().iter().any(|n| n == name) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name:?} never arrived; got {:?}", self.names());
    }
}

struct GrpcCollector(Arrived);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Starts an OTLP/gRPC receiver for traces and metrics over TLS on 127.0.0.1, requiring a
/// client certificate signed by the test CA when `mtls`.
async fn grpc_tls_receiver(pki: &Pki, mtls: bool) -> (SocketAddr, Arrived) {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrived = Arrived::default();
    let mut tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.server_certificate, &pki.server_key));
    if mtls {
        tls = tls.client_ca_root(Certificate::from_pem(&pki.ca));
    }
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(TraceServiceServer::new(GrpcCollector(arrived.clone())))
        .add_service(MetricsServiceServer::new(GrpcCollector(arrived.clone())));
    tokio::spawn(async move {
        let _ = server
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (addr, arrived)
}

/// TLS connections for axum: handshakes that fail are counted and skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            match tokio::time::timeout(Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, peer),
                _ => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Starts an OTLP/HTTP protobuf receiver (`/v1/traces`, `/v1/metrics`) over TLS on
/// 127.0.0.1, requiring a client certificate signed by the test CA when `mtls`; returns the
/// count of refused TLS handshakes too.
async fn http_tls_receiver(pki: &Pki, mtls: bool) -> (SocketAddr, Arrived, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if mtls {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_certificate.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        refused: refused.clone(),
    };
    let arrived = Arrived::default();
    let (traces, metrics) = (arrived.clone(), arrived.clone());
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                traces.traces(ExportTraceServiceRequest::decode(body).unwrap());
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        )
        .route(
            "/v1/metrics",
            axum::routing::post(move |body: Bytes| async move {
                metrics.metrics(ExportMetricsServiceRequest::decode(body).unwrap());
                ExportMetricsServiceResponse::default().encode_to_vec()
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, arrived, refused)
}

/// OTLP export of traces and metrics (logs off), exported only when flushed.
fn config(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, Error> {
    let mut vars = vec![
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ("INFERD_LOG_FORMAT", "json"),
    ];
    vars.extend_from_slice(pairs);
    TelemetryConfig::from_env(&env(&vars))
}

/// Starts telemetry as inferd does, without installing it globally.
fn start(pairs: &[(&str, &str)]) -> Result<TelemetryGuard, Error> {
    let config = config(pairs)?;
    assert_eq!(config.mode, inferd_telemetry::Mode::Otlp);
    build_with_writer(&config, std::io::sink, false).map(|(guard, _dispatch)| guard)
}

/// Ends a span named `name` and counts one `name` on a counter.
fn emit(guard: &TelemetryGuard, name: &str) {
    guard
        .tracer_provider()
        .unwrap()
        .tracer("test")
        .start(name.to_owned())
        .end();
    guard
        .meter()
        .unwrap()
        .u64_counter(name.to_owned())
        .build()
        .add(1, &[]);
}

fn flush(guard: &TelemetryGuard) -> Result<(), ShutdownError> {
    tokio::task::block_in_place(|| guard.force_flush())
}

fn stop(guard: TelemetryGuard) -> Result<(), ShutdownError> {
    tokio::task::block_in_place(|| guard.shutdown(Duration::from_secs(2)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_delivers_spans_and_metrics_checked_against_the_ca_file() {
    let pki = Pki::new("grpc");
    let (addr, arrived) = grpc_tls_receiver(&pki, false).await;
    // No scheme, OTEL_EXPORTER_OTLP_INSECURE unset: TLS, and the collector's certificate must
    // name `localhost`.
    let endpoint = format!("localhost:{}", addr.port());
    let guard = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.path("ca.pem")),
    ])
    .unwrap();
    emit(&guard, "grpc.tls");
    flush(&guard).unwrap();
    arrived.wait_for("span grpc.tls").await;
    arrived.wait_for("metric grpc.tls").await;
    stop(guard).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tls_delivers_spans_and_metrics_with_per_signal_ca_files_winning() {
    let pki = Pki::new("http");
    let (addr, arrived, _) = http_tls_receiver(&pki, false).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let guard = start(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        // The general file is the wrong CA: export works only if the per-signal files win.
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.path("other-ca.pem")),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &pki.path("ca.pem")),
        (
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            &pki.path("ca.pem"),
        ),
    ])
    .unwrap();
    emit(&guard, "http.tls");
    flush(&guard).unwrap();
    arrived.wait_for("span http.tls").await;
    arrived.wait_for("metric http.tls").await;
    stop(guard).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_grpc_endpoint_without_a_scheme_is_plaintext() {
    let (url, spans) = grpc_receiver().await;
    let endpoint = url.trim_start_matches("http://");
    let guard = start(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ])
    .unwrap();
    emit(&guard, "plaintext");
    flush(&guard).unwrap();
    spans.wait_for("plaintext").await;
    stop(guard).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_receivers_take_the_client_certificate_and_refuse_a_client_without_one() {
    for protocol in ["grpc", "http/protobuf"] {
        let pki = Pki::new("mtls");
        let (addr, arrived, refused) = if protocol == "grpc" {
            let (addr, arrived) = grpc_tls_receiver(&pki, true).await;
            (addr, arrived, None)
        } else {
            let (addr, arrived, refused) = http_tls_receiver(&pki, true).await;
            (addr, arrived, Some(refused))
        };
        let endpoint = format!("https://127.0.0.1:{}", addr.port());
        let server_only = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.path("ca.pem")),
        ];
        let client_certificate = pki.path("client.pem");
        let client_key = pki.path("client-key.pem");
        let mut with_identity = server_only.to_vec();
        with_identity.push(("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &client_certificate));
        with_identity.push(("OTEL_EXPORTER_OTLP_CLIENT_KEY", &client_key));

        let guard = start(&with_identity).unwrap();
        emit(&guard, "with.certificate");
        flush(&guard).unwrap();
        arrived.wait_for("span with.certificate").await;
        arrived.wait_for("metric with.certificate").await;
        stop(guard).unwrap();

        let guard = start(&server_only).unwrap();
        emit(&guard, "without.certificate");
        assert!(
            flush(&guard).is_err(),
            "{protocol}: export without a client certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let names = arrived.names();
        assert!(
            !names.iter().any(|n| n.contains("without.certificate")),
            "{protocol}: {names:?}"
        );
        if let Some(refused) = refused {
            assert!(refused.load(Ordering::SeqCst) > 0, "{protocol}");
        }
        let _ = stop(guard);
    }
}

fn warnings_for(logs: &str, endpoint: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["level"] == "WARN"
                && l["target"] == EXPORT_HEALTH_TARGET
                && l["fields"]["endpoint"] == endpoint
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_delivers_nothing_warns_once_per_exporter_and_starts_and_stops_promptly() {
    let pki = Pki::new("wrong-ca");
    let (grpc_addr, grpc_arrived) = grpc_tls_receiver(&pki, false).await;
    let (http_addr, http_arrived, refused) = http_tls_receiver(&pki, false).await;
    let grpc_endpoint = format!("https://127.0.0.1:{}", grpc_addr.port());
    let http_endpoint = format!("https://127.0.0.1:{}/v1/traces", http_addr.port());
    let wrong_ca = pki.path("other-ca.pem");
    let traces_to = |endpoint: &str, protocol: &str| {
        config(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &wrong_ca),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap()
    };

    // The gRPC exporter's log is the process's (export failures are logged from the SDK's
    // threads); the HTTP one's warnings land there too.
    let logs = Captured::default();
    let started = Instant::now();
    let grpc = init_with_writer(&traces_to(&grpc_endpoint, "grpc"), logs.clone()).unwrap();
    let (http, _dispatch) = build_with_writer(
        &traces_to(&http_endpoint, "http/protobuf"),
        std::io::sink,
        false,
    )
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    for i in 0..3 {
        for guard in [&grpc, &http] {
            guard
                .tracer_provider()
                .unwrap()
                .tracer("test")
                .start(format!("lost {i}"))
                .end();
            let started = Instant::now();
            assert!(flush(guard).is_err(), "export {i} should fail");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
    assert!(
        grpc_arrived.names().is_empty(),
        "{:?}",
        grpc_arrived.names()
    );
    assert!(
        http_arrived.names().is_empty(),
        "{:?}",
        http_arrived.names()
    );
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the HTTP receiver saw no handshake"
    );

    let text = logs.text();
    for endpoint in [&grpc_endpoint, &http_endpoint] {
        let warnings = warnings_for(&text, endpoint);
        assert_eq!(warnings.len(), 1, "{endpoint}: {text}");
        let reason = warnings[0]["fields"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("UnknownIssuer") || reason.contains("certificate"),
            "{endpoint}: the reason should say the certificate was not trusted: {reason}"
        );
    }

    for guard in [grpc, http] {
        let started = Instant::now();
        stop(guard).unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_that_cannot_be_used_stop_start_up_naming_the_variable_and_path() {
    let pki = Pki::new("bad-files");
    pki.write("not-pem.txt", "just some text\n");
    pki.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let missing = pki.path("missing.pem");
    let not_pem = pki.path("not-pem.txt");
    let broken = pki.path("broken.pem");
    let client = pki.path("client.pem");
    let cases = [
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            missing.as_str(),
            "cannot be read",
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            not_pem.as_str(),
            "no -----BEGIN CERTIFICATE-----",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            broken.as_str(),
            "not a valid X.509",
        ),
        // A certificate where the key should be.
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            client.as_str(),
            "no -----BEGIN PRIVATE KEY-----",
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            not_pem.as_str(),
            "no -----BEGIN CERTIFICATE-----",
        ),
    ];
    for protocol in ["grpc", "http/protobuf"] {
        for (variable, path, problem) in cases {
            let key = pki.path("client-key.pem");
            let mut vars = vec![
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.invalid:4317",
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", client.as_str()),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.as_str()),
            ];
            vars.retain(|(v, _)| *v != variable);
            vars.push((variable, path));
            let error = match start(&vars) {
                Ok(_) => panic!("{protocol}: {variable}={path} accepted"),
                Err(e) => e,
            };
            let text = error.to_string();
            assert!(
                text.contains(variable) && text.contains(path) && text.contains(problem),
                "{protocol}: {text}"
            );
            assert!(
                matches!(&error, Error::InvalidSetting { variable: v, value, .. } if v == variable && value == path),
                "{error:?}"
            );
        }
    }

    // A key that is not the client certificate's: the TLS stack refuses it, and the error
    // names the files.
    pki.write("server-key.pem", &pki.server_key);
    let server_key = pki.path("server-key.pem");
    for protocol in ["grpc", "http/protobuf"] {
        let error = start(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.invalid:4317",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &client),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &server_key),
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.contains(&format!("OTEL_EXPORTER_OTLP_CLIENT_KEY={server_key}"))
                && error.contains(&format!("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={client}")),
            "{protocol}: {error}"
        );
    }

    // A plaintext endpoint uses no TLS file, so it does not read them.
    let guard = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &missing),
    ]);
    assert!(guard.is_ok(), "{:?}", guard.err());
}
