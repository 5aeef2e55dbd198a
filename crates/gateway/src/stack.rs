//! How a generation's request reaches an upstream: a tower stack, composed the way
//! linkerd2-proxy composes its clients, each concern a layer around the one service that sends
//! a request.
//!
//! ```text
//! Failover           the route's candidates in order: skips one known to be down or full;
//!  │                 hands on after it could not be reached or said 502/503
//!  └ Retry           (tower::retry, policy Retries) the same upstream again after a capped,
//!     │              jittered backoff, when no other candidate is left
//!     └ ClientSpan   one HTTP CLIENT span per attempt, the trace context injected
//!        └ StatusErrors  a non-2xx answer becomes an error (its body read for the message)
//!           └ Deadline   the time limit for the answer's head
//!              └ Post    one POST on the upstream's pooled client
//! ```
//!
//! Everything below `Failover` is made per candidate for one generation (the upstream, the
//! API and the generation's deadlines are its settings), so a layer holds them as plain
//! fields. Nothing has been streamed to the client while this stack runs: every retry
//! and failover is safe.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::Full;
use inferd_openai::Api;
use inferd_otel::{http_client_span_to, inject_span_context, record_http_response, OtelSpan};
use opentelemetry::KeyValue;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tower::retry::{Policy, Retry};
use tower::{Service, ServiceExt};

use super::answer;
use super::client::{self, describe, Response};
use super::{ModelRoute, Upstream};
use inferd_engine::{EngineError, GenerationRequest, Prompt};

/// Backoff before the first retry; doubled each time, capped, with full jitter.
const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(2);
/// Largest error body read from an upstream.
const MAX_ERROR_BODY: usize = 64 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why one attempt got no answer.
#[derive(Debug)]
pub(crate) struct CallError {
    pub(crate) error: EngineError,
    pub(crate) cause: Cause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The upstream answered with this non-2xx status.
    Status(StatusCode),
    /// It could not be reached: connecting failed.
    Unreachable,
    /// The connection failed after it was made.
    Broken,
    /// The answer's head did not come before the deadline.
    Timeout,
}

impl CallError {
    /// Whether another attempt, here or on another upstream, may do better: the upstream
    /// could not be reached, or said 502 or 503. Anything else is the answer.
    pub(crate) fn retryable(&self) -> bool {
        match self.cause {
            Cause::Status(status) => {
                status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE
            }
            Cause::Unreachable => true,
            Cause::Broken | Cause::Timeout => false,
        }
    }
}

/// The bottom of the stack: one request on the upstream's pooled client, up to the answer's
/// head.
#[derive(Clone)]
pub(crate) struct Post {
    up: Arc<Upstream>,
}

impl Service<client::Request> for Post {
    type Response = Response;
    type Error = CallError;
    type Future = BoxFuture<Result<Response, CallError>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: client::Request) -> Self::Future {
        let up = Arc::clone(&self.up);
        let url = request.uri().clone();
        Box::pin(async move {
            up.client.send(request).await.map_err(|e| {
                let upstream = up.config.name.clone();
                let reason = format!("{url}: {}", describe(&e));
                if e.is_connect() {
                    CallError {
                        error: EngineError::UpstreamUnavailable { upstream, reason },
                        cause: Cause::Unreachable,
                    }
                } else {
                    CallError {
                        error: EngineError::UpstreamFailed { upstream, reason },
                        cause: Cause::Broken,
                    }
                }
            })
        })
    }
}

/// The time limit for the answer's head: `at`, which is `limit` after the generation began
/// (every attempt and candidate shares it).
#[derive(Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    up: Arc<Upstream>,
    head: HeadDeadline,
}

impl<S> Service<client::Request> for Deadline<S>
where
    S: Service<client::Request, Response = Response, Error = CallError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = CallError;
    type Future = BoxFuture<Result<Response, CallError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: client::Request) -> Self::Future {
        let answer = self.inner.call(request);
        let (up, head) = (Arc::clone(&self.up), self.head);
        Box::pin(async move {
            match tokio::time::timeout_at(head.at, answer).await {
                Ok(answer) => answer,
                Err(_elapsed) => Err(CallError {
                    error: EngineError::UpstreamTimeout {
                        upstream: up.config.name.clone(),
                        what: "answer",
                        seconds: head.limit.as_secs_f64(),
                    },
                    cause: Cause::Timeout,
                }),
            }
        })
    }
}

/// Turns a non-2xx answer into the error it stands for; its body (up to a limit) gives the
/// message.
#[derive(Clone)]
pub(crate) struct StatusErrors<S> {
    inner: S,
    up: Arc<Upstream>,
}

impl<S> Service<client::Request> for StatusErrors<S>
where
    S: Service<client::Request, Response = Response, Error = CallError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = CallError;
    type Future = BoxFuture<Result<Response, CallError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: client::Request) -> Self::Future {
        let answer = self.inner.call(request);
        let up = Arc::clone(&self.up);
        Box::pin(async move {
            let response = answer.await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let error = status_error(&up.config.name, up.via.as_deref(), response).await;
            Err(CallError {
                error,
                cause: Cause::Status(status),
            })
        })
    }
}

/// One attempt as an HTTP CLIENT span: makes the request (the body, its headers and the span's
/// trace context) and records how it went. A successful attempt's span is handed out with the
/// answer, to stay open while the body is read. `sent` numbers the generation's attempts on
/// every candidate: a later one carries `http.request.resend_count` and counts as a retry of
/// its upstream.
#[derive(Clone)]
pub(crate) struct ClientSpan<S> {
    inner: S,
    up: Arc<Upstream>,
    api: Api,
    sent: Arc<AtomicU32>,
}

impl<S> Service<Bytes> for ClientSpan<S>
where
    S: Service<client::Request, Response = Response, Error = CallError>,
    S::Future: Send + 'static,
{
    type Response = (Response, OtelSpan);
    type Error = CallError;
    type Future = BoxFuture<Result<(Response, OtelSpan), CallError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, body: Bytes) -> Self::Future {
        let endpoint = self.up.endpoint(self.api);
        let span = http_client_span_to(&Method::POST, &endpoint.target);
        let resends = self.sent.fetch_add(1, Ordering::Relaxed);
        if resends > 0 {
            span.set_attribute(KeyValue::new(
                inferd_otel::semconv::HTTP_REQUEST_RESEND_COUNT,
                i64::from(resends),
            ));
            self.up.count_retry();
        }
        let mut request = client::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint.url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = &self.up.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        inject_span_context(&span, headers);
        let answer = self.inner.call(request);
        Box::pin(async move {
            match answer.await {
                Ok(response) => {
                    record_http_response(&span, response.status());
                    Ok((response, span))
                }
                Err(e) => {
                    match e.cause {
                        // The status says it all; the SERVER span's error is the upstream's.
                        Cause::Status(status) => record_http_response(&span, status),
                        Cause::Unreachable | Cause::Broken | Cause::Timeout => {
                            span.record_error(e.error.kind(), &e.error.to_string());
                        }
                    }
                    span.end();
                    Err(e)
                }
            }
        })
    }
}

/// When the same upstream is tried again: after a retryable failure, while no other
/// candidate is left (`fallback` false), at most `max_retries` times, each after a
/// [`backoff`] that must end before the answer's deadline. Giving up on an upstream that could
/// not be reached marks it down (the probe clears that).
#[derive(Clone)]
pub(crate) struct Retries {
    up: Arc<Upstream>,
    fallback: bool,
    deadline: Instant,
    /// Retries made so far.
    attempt: u32,
}

impl<Res> Policy<Bytes, Res, CallError> for Retries {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Bytes,
        result: &mut Result<Res, CallError>,
    ) -> Option<Self::Future> {
        let Err(failed) = result else { return None };
        if !failed.retryable() {
            return None;
        }
        if self.fallback || self.attempt >= self.up.config.max_retries {
            if let EngineError::UpstreamUnavailable { reason, .. } = &failed.error {
                self.up.mark_unhealthy(reason);
            }
            return None;
        }
        let backoff = backoff(self.attempt);
        if Instant::now() + backoff >= self.deadline {
            return None;
        }
        tracing::debug!(upstream = %self.up.config.name, attempt = self.attempt, error = %failed.error, "retrying upstream call");
        self.attempt += 1;
        Some(tokio::time::sleep(backoff))
    }

    fn clone_request(&mut self, request: &Bytes) -> Option<Bytes> {
        Some(request.clone())
    }
}

/// Full-jitter exponential backoff: a random wait up to `min(cap, base * 2^attempt)`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(RETRY_CAP);
    ceiling.mul_f64(fastrand::f64())
}

/// The time limit for the answer's head of one generation on one upstream.
#[derive(Clone, Copy)]
pub(crate) struct HeadDeadline {
    pub(crate) at: Instant,
    /// `at` less the generation's start, for the error.
    pub(crate) limit: Duration,
}

/// The stack below `Failover` for one candidate: `up`'s endpoint of `api`.
fn upstream_stack(
    up: &Arc<Upstream>,
    api: Api,
    sent: &Arc<AtomicU32>,
    head: HeadDeadline,
    fallback: bool,
) -> Retry<Retries, ClientSpan<StatusErrors<Deadline<Post>>>> {
    let post = Post { up: Arc::clone(up) };
    let deadline = Deadline {
        inner: post,
        up: Arc::clone(up),
        head,
    };
    let status_errors = StatusErrors {
        inner: deadline,
        up: Arc::clone(up),
    };
    let client_span = ClientSpan {
        inner: status_errors,
        up: Arc::clone(up),
        api,
        sent: Arc::clone(sent),
    };
    let retries = Retries {
        up: Arc::clone(up),
        fallback,
        deadline: head.at,
        attempt: 0,
    };
    Retry::new(retries, client_span)
}

/// The candidates of a route, in the order they are tried.
pub(crate) type Candidates = Arc<[(Arc<Upstream>, ModelRoute)]>;

/// A request that got its answer's head from one of the candidates.
pub(crate) struct Sent {
    /// The generation request, handed back.
    pub(crate) request: GenerationRequest,
    pub(crate) response: Response,
    /// The HTTP CLIENT span of the successful attempt.
    pub(crate) span: OtelSpan,
    pub(crate) upstream: Arc<Upstream>,
    /// The model's id as clients name it.
    pub(crate) model_id: String,
    /// The upstream's concurrency limit, held until the answer is read.
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) head_deadline: Instant,
    pub(crate) deadline: Instant,
}

/// The top of the stack: the candidates of a route in order (the first is the one chosen for
/// this request). One known to be down, or at its concurrency limit, is skipped. One that
/// cannot be reached or answers 502/503 hands the request on to the next usable candidate at
/// once; the last one retries. Any other failure is the answer.
#[derive(Clone)]
pub(crate) struct Failover {
    candidates: Candidates,
    /// Makes the request body naming a candidate's model.
    body: fn(&str, &GenerationRequest) -> Vec<u8>,
}

impl Failover {
    /// `candidates` must not be empty.
    pub(crate) fn new(
        candidates: Candidates,
        body: fn(&str, &GenerationRequest) -> Vec<u8>,
    ) -> Self {
        debug_assert!(!candidates.is_empty());
        Self { candidates, body }
    }

    /// The candidate chosen for this request.
    pub(crate) fn first(&self) -> &Upstream {
        &self.candidates[0].0
    }
}

impl Service<GenerationRequest> for Failover {
    type Response = Sent;
    type Error = EngineError;
    type Future = BoxFuture<Result<Sent, EngineError>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), EngineError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GenerationRequest) -> Self::Future {
        let Self { candidates, body } = self.clone();
        Box::pin(async move {
            let started = Instant::now();
            let api = match &request.pass_through {
                Some(pass) => pass.api,
                None if matches!(request.prompt, Prompt::Chat(_)) => Api::Chat,
                None => Api::Completions,
            };
            let sent = Arc::new(AtomicU32::new(0));
            let mut error: Option<EngineError> = None;
            for (i, (up, route)) in candidates.iter().enumerate() {
                if let Err(e) = up.check_healthy() {
                    error.get_or_insert(e);
                    continue;
                }
                let Ok(permit) = Arc::clone(&up.permits).try_acquire_owned() else {
                    error.get_or_insert(EngineError::UpstreamBusy {
                        upstream: up.config.name.clone(),
                        limit: up.config.max_concurrent,
                    });
                    continue;
                };
                let timeouts = up.config.timeouts;
                let deadline = started + timeouts.total;
                // A stream's head comes before its first token; a whole answer's only at the end.
                let head_at = if request.stream {
                    started + timeouts.first_token.min(timeouts.total)
                } else {
                    deadline
                };
                let head = HeadDeadline {
                    at: head_at,
                    limit: head_at - started,
                };
                let fallback = candidates[i + 1..]
                    .iter()
                    .any(|(u, _)| u.health().healthy != Some(false));
                let stack = upstream_stack(up, api, &sent, head, fallback);
                let request_body = Bytes::from(body(&route.upstream_model, &request));
                match stack.oneshot(request_body).await {
                    Ok((response, span)) => {
                        return Ok(Sent {
                            request,
                            response,
                            span,
                            upstream: Arc::clone(up),
                            model_id: route.id.clone(),
                            permit,
                            head_deadline: head.at,
                            deadline,
                        })
                    }
                    Err(failed) if failed.retryable() => {
                        if fallback {
                            tracing::debug!(upstream = %up.config.name, error = %failed.error, "failing over to the next upstream");
                        }
                        error = Some(failed.error);
                    }
                    Err(failed) => return Err(failed.error),
                }
            }
            Err(error.unwrap_or_else(|| EngineError::UpstreamUnavailable {
                upstream: candidates[0].0.config.name.clone(),
                reason: "no upstream could take the request".into(),
            }))
        })
    }
}

/// The error an upstream's non-2xx answer stands for; `via` is the forward proxy the call went
/// through, if any.
async fn status_error(upstream: &str, via: Option<&str>, response: Response) -> EngineError {
    let status = response.status();
    if let (Some(proxy), StatusCode::PROXY_AUTHENTICATION_REQUIRED) = (via, status) {
        // The proxy's business, not the client's: never passed through as a 407.
        return EngineError::UpstreamStatus {
            upstream: upstream.to_owned(),
            status: StatusCode::BAD_GATEWAY.as_u16(),
            message: proxy_auth_message(proxy),
            code: None,
            param: None,
        };
    }
    // Redirects are not followed (a POST is not re-sent elsewhere); say where it pointed.
    let redirect = status.is_redirection().then(|| {
        let to = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("(no Location header)");
        format!(
            "it redirects to {to}; inferd does not follow redirects, so configure the \
             upstream's URL as the address it redirects to"
        )
    });
    let status = status.as_u16();
    let body = client::read_prefix(response.into_body(), MAX_ERROR_BODY).await;
    let (message, code, param) = answer::error_from_body(&body);
    let message = redirect.unwrap_or(message);
    EngineError::UpstreamStatus {
        upstream: upstream.to_owned(),
        status,
        message,
        code,
        param,
    }
}

/// What a 407 from the proxy in front of an upstream means.
pub(crate) fn proxy_auth_message(proxy: &str) -> String {
    format!(
        "the proxy {proxy} asks for credentials (407 Proxy Authentication Required): give them \
         in the proxy URL, http://user:password@host:port"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UpstreamConfig;

    fn upstream(max_retries: u32) -> Arc<Upstream> {
        let config = UpstreamConfig {
            max_retries,
            ..UpstreamConfig::new("u", "http://127.0.0.1:9/v1")
        };
        Arc::new(Upstream::new(config).expect("upstream"))
    }

    fn failed(cause: Cause) -> Result<(), CallError> {
        let error = match cause {
            Cause::Status(status) => EngineError::UpstreamStatus {
                upstream: "u".into(),
                status: status.as_u16(),
                message: "no".into(),
                code: None,
                param: None,
            },
            Cause::Unreachable => EngineError::UpstreamUnavailable {
                upstream: "u".into(),
                reason: "cannot connect".into(),
            },
            Cause::Broken => EngineError::UpstreamFailed {
                upstream: "u".into(),
                reason: "reset".into(),
            },
            Cause::Timeout => EngineError::UpstreamTimeout {
                upstream: "u".into(),
                what: "answer",
                seconds: 1.0,
            },
        };
        Err(CallError { error, cause })
    }

    fn retries(up: &Arc<Upstream>, fallback: bool, deadline: Instant) -> Retries {
        Retries {
            up: Arc::clone(up),
            fallback,
            deadline,
            attempt: 0,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_503_or_an_unreachable_upstream_is_retried_up_to_the_limit_then_given_up() {
        for cause in [
            Cause::Status(StatusCode::SERVICE_UNAVAILABLE),
            Cause::Status(StatusCode::BAD_GATEWAY),
            Cause::Unreachable,
        ] {
            let up = upstream(2);
            let mut policy = retries(&up, false, far());
            let mut body = Bytes::from_static(b"{}");
            assert!(policy.retry(&mut body, &mut failed(cause)).is_some());
            assert!(policy.retry(&mut body, &mut failed(cause)).is_some());
            assert!(
                policy.retry(&mut body, &mut failed(cause)).is_none(),
                "{cause:?}"
            );
            // Giving up on an upstream that cannot be reached marks it down; a 503 does not.
            assert_eq!(up.check_healthy().is_err(), cause == Cause::Unreachable);
        }
    }

    #[tokio::test]
    async fn an_answer_a_client_error_a_timeout_or_a_broken_connection_is_not_retried() {
        let up = upstream(3);
        let mut policy = retries(&up, false, far());
        let mut body = Bytes::new();
        assert!(policy.retry(&mut body, &mut Ok(())).is_none());
        for cause in [
            Cause::Status(StatusCode::BAD_REQUEST),
            Cause::Status(StatusCode::INTERNAL_SERVER_ERROR),
            Cause::Status(StatusCode::PERMANENT_REDIRECT),
            Cause::Timeout,
            Cause::Broken,
        ] {
            assert!(
                policy.retry(&mut body, &mut failed(cause)).is_none(),
                "{cause:?}"
            );
        }
        assert_eq!(policy.attempt, 0);
        assert!(up.check_healthy().is_ok());
    }

    #[tokio::test]
    async fn with_another_candidate_left_the_first_failure_hands_on_and_marks_an_unreachable_one_down(
    ) {
        let up = upstream(3);
        let mut policy = retries(&up, true, far());
        let mut body = Bytes::new();
        let mut result = failed(Cause::Unreachable);
        assert!(policy.retry(&mut body, &mut result).is_none());
        assert!(
            result.is_err_and(|e| e.retryable()),
            "the failure is handed to failover"
        );
        assert!(up.check_healthy().is_err());
    }

    #[tokio::test]
    async fn no_retry_whose_backoff_would_end_after_the_deadline() {
        let up = upstream(3);
        let mut policy = retries(&up, false, Instant::now());
        let mut body = Bytes::new();
        assert!(policy
            .retry(&mut body, &mut failed(Cause::Unreachable))
            .is_none());
        // Out of time, not out of tries: the upstream is not marked down for it.
        assert!(up.check_healthy().is_ok());
    }

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        for attempt in 0..40 {
            let ceiling = RETRY_BASE
                .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
                .min(RETRY_CAP);
            let wait = backoff(attempt);
            assert!(wait <= ceiling && wait <= RETRY_CAP, "{attempt}: {wait:?}");
        }
    }

    #[tokio::test]
    async fn no_answer_head_by_the_deadline_is_a_timeout_naming_the_limit() {
        let up = upstream(0);
        let silent = tower::service_fn(|_: client::Request| {
            futures::future::pending::<Result<Response, CallError>>()
        });
        let limit = Duration::from_millis(50);
        let mut deadline = Deadline {
            inner: silent,
            up,
            head: HeadDeadline {
                at: Instant::now() + limit,
                limit,
            },
        };
        let request = client::Request::new(Full::new(Bytes::new()));
        let started = Instant::now();
        let err = deadline.call(request).await.expect_err("times out");
        assert!(started.elapsed() >= limit);
        assert_eq!(err.cause, Cause::Timeout);
        assert!(!err.retryable());
        match err.error {
            EngineError::UpstreamTimeout {
                upstream,
                what,
                seconds,
            } => assert_eq!((upstream.as_str(), what, seconds), ("u", "answer", 0.05)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
