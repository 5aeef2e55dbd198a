//! Test support: real OTLP receivers on 127.0.0.1 (gRPC via tonic, HTTP/protobuf via axum)
//! decoding with opentelemetry-proto, and a log writer the test can read back.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One received span with its resource attributes.
#[derive(Debug, Clone)]
pub struct Received {
    pub span: Span,
    pub resource: Vec<KeyValue>,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        attr(&self.resource, key)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn attr(kvs: &[KeyValue], key: &str) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            AnyValue::BoolValue(b) => b.to_string(),
            AnyValue::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
}

/// Spans received so far, shared with the receiver.
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Received>>>);

impl Spans {
    fn push(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for rs in request.resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        span,
                        resource: resource.clone(),
                    });
                }
            }
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s until a span named `name` arrived.
    pub async fn wait_for(&self, name: &str) -> Received {
        for _ in 0..200 {
            if let Some(s) = self.all().into_iter().find(|s| s.span.name == name) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("span {name:?} never arrived; got {:?}", self.names());
    }

    pub fn names(&self) -> Vec<String> {
        self.all().into_iter().map(|s| s.span.name).collect()
    }
}

struct GrpcReceiver(Spans);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC trace receiver; returns its endpoint URL and the received spans.
pub async fn grpc_receiver() -> (String, Spans) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = Spans::default();
    let service = TraceServiceServer::new(GrpcReceiver(spans.clone()));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (format!("http://{addr}"), spans)
}

/// Starts an OTLP/HTTP protobuf trace receiver at `/v1/traces` on `addr` (port 0 for any).
pub async fn http_receiver_on(addr: SocketAddr) -> (String, Spans) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = Spans::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        sink.push(request);
                        let reply = ExportTraceServiceResponse {
                            partial_success: None,
                        };
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                            reply.encode_to_vec(),
                        )
                            .into_response_parts()
                    }
                    Err(_) => (
                        [(axum::http::header::CONTENT_TYPE, "text/plain")],
                        b"bad protobuf".to_vec(),
                    )
                        .into_response_parts(),
                }
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1/traces"), spans)
}

/// Turns a tuple into a response; a tiny helper so both arms have one type.
trait IntoResponseParts {
    fn into_response_parts(self) -> axum::response::Response;
}

impl<T: axum::response::IntoResponse> IntoResponseParts for T {
    fn into_response_parts(self) -> axum::response::Response {
        self.into_response()
    }
}

/// Starts an OTLP/HTTP protobuf trace receiver on an ephemeral port.
pub async fn http_receiver() -> (String, Spans) {
    http_receiver_on("127.0.0.1:0".parse().unwrap()).await
}

/// A log writer the test can read back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// An environment from pairs.
pub fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One received log record: (body, trace_id hex, span_id hex, resource attributes).
pub type LogRecord = (String, String, String, Vec<KeyValue>);

/// Log records received so far.
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<LogRecord>>>);

impl Logs {
    pub fn all(&self) -> Vec<LogRecord> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s for a record whose body is `body`.
    pub async fn wait_for(&self, body: &str) -> LogRecord {
        for _ in 0..200 {
            if let Some(r) = self.all().into_iter().find(|r| r.0 == body) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("log {body:?} never arrived; got {:?}", self.all());
    }
}

struct GrpcLogsReceiver(Logs);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService
    for GrpcLogsReceiver
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
        >,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse>,
        tonic::Status,
    > {
        let mut logs = self.0 .0.lock().unwrap();
        for rl in request.into_inner().resource_logs {
            let resource = rl.resource.map(|r| r.attributes).unwrap_or_default();
            for sl in rl.scope_logs {
                for record in sl.log_records {
                    let body = record
                        .body
                        .and_then(|b| b.value)
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s,
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    logs.push((
                        body,
                        hex(&record.trace_id),
                        hex(&record.span_id),
                        resource.clone(),
                    ));
                }
            }
        }
        Ok(tonic::Response::new(
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse {
                partial_success: None,
            },
        ))
    }
}

/// Starts an OTLP/gRPC receiver for traces and logs on one port.
pub async fn grpc_traces_and_logs_receiver() -> (String, Spans, Logs) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = Spans::default();
    let logs = Logs::default();
    let traces = TraceServiceServer::new(GrpcReceiver(spans.clone()));
    let logs_service =
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer::new(
            GrpcLogsReceiver(logs.clone()),
        );
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(logs_service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (format!("http://{addr}"), spans, logs)
}

/// One received data point: (metric name, unit, data point attributes).
pub type MetricPoint = (String, String, Vec<KeyValue>);

/// Metric data points received so far.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<Vec<MetricPoint>>>);

impl Metrics {
    pub fn all(&self) -> Vec<MetricPoint> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s for a data point of metric `name`.
    pub async fn wait_for(&self, name: &str) -> MetricPoint {
        for _ in 0..200 {
            if let Some(m) = self.all().into_iter().find(|m| m.0 == name) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("metric {name:?} never arrived; got {:?}", self.all());
    }
}

/// Starts an OTLP/HTTP protobuf metrics receiver at `/v1/metrics` on an ephemeral port.
pub async fn http_metrics_receiver() -> (String, Metrics) {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::default();
    let sink = metrics.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportMetricsServiceRequest::decode(body).unwrap();
                let mut all = sink.0.lock().unwrap();
                for rm in request.resource_metrics {
                    for sm in rm.scope_metrics {
                        for m in sm.metrics {
                            let points: Vec<Vec<KeyValue>> = match &m.data {
                                Some(Data::Histogram(h)) => {
                                    h.data_points.iter().map(|p| p.attributes.clone()).collect()
                                }
                                Some(Data::Sum(s)) => {
                                    s.data_points.iter().map(|p| p.attributes.clone()).collect()
                                }
                                Some(Data::Gauge(g)) => {
                                    g.data_points.iter().map(|p| p.attributes.clone()).collect()
                                }
                                _ => Vec::new(),
                            };
                            for attributes in points {
                                all.push((m.name.clone(), m.unit.clone(), attributes));
                            }
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1/metrics"), metrics)
}
