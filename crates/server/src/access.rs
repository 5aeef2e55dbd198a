//! The access log: one line per request, written when the response body has been sent (or
//! the client went away), inside the request's own span so it carries its trace and span ids.
//!
//! Handlers that know the model and token counts record them in the request's
//! [`AccessFacts`] (an extension the middleware inserts); for a stream they arrive when the
//! generation ends, which is why the line waits for the end of the body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use inferd_otel::OtelSpan;
use tower::{Layer, Service};

/// What a handler learned about the request, for its access line.
#[derive(Debug, Clone, Default)]
pub struct AccessFacts(Arc<Mutex<Facts>>);

#[derive(Debug, Default)]
struct Facts {
    model: Option<String>,
    /// Id of the API key the request presented (a hash prefix, never the key).
    key_id: Option<String>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

impl AccessFacts {
    /// The model the request asked for.
    pub fn set_model(&self, model: &str) {
        self.with(|f| f.model = Some(model.to_owned()));
    }

    /// The id of the request's API key.
    pub fn set_key_id(&self, id: &str) {
        self.with(|f| f.key_id = Some(id.to_owned()));
    }

    /// Token counts of the finished generation.
    pub fn set_tokens(&self, prompt: u32, completion: u32) {
        self.with(|f| {
            f.prompt_tokens = Some(prompt);
            f.completion_tokens = Some(completion);
        });
    }

    fn with(&self, update: impl FnOnce(&mut Facts)) {
        // A poisoned lock only means a panic elsewhere; the facts are still usable.
        let mut facts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut facts);
    }
}

/// Layer of the access log: hands each request an [`AccessFacts`] and logs one line when its
/// response ends. A plain tower layer (no boxed future per request, unlike a `from_fn`
/// middleware): it runs on every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> Service<Request> for AccessLog<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AccessFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let facts = AccessFacts::default();
        request.extensions_mut().insert(facts.clone());
        let line = AccessLine {
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            path: request.uri().path().to_owned(),
            status: None,
            started: Instant::now(),
            facts,
            span: OtelSpan::current(),
        };
        AccessFuture {
            inner: self.inner.call(request),
            line: PendingLine(Some(line)),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`AccessLog`]: the response, its body wrapped to write the line at its end.
    pub struct AccessFuture<F> {
        #[pin]
        inner: F,
        line: PendingLine,
    }
}

/// The line of a request whose response is not produced yet. Dropped unwritten, the client
/// went away before the answer (a non-streamed generation it stopped waiting for): the line
/// says so, with nginx's 499.
struct PendingLine(Option<AccessLine>);

/// The status an access line gives a request the client abandoned before its response.
const CLIENT_CLOSED_REQUEST: u16 = 499;

impl Drop for PendingLine {
    fn drop(&mut self) {
        if let Some(mut line) = self.0.take() {
            line.status = None;
            line.write("client_closed");
        }
    }
}

impl<F> std::fmt::Debug for AccessFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessFuture").finish_non_exhaustive()
    }
}

impl<F> Future for AccessFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let Some(mut line) = this.line.0.take() else {
            return Poll::Ready(Ok(response));
        };
        let (parts, body) = response.into_parts();
        line.status = Some(parts.status);
        Poll::Ready(Ok(Response::from_parts(
            parts,
            Body::new(LoggedBody {
                inner: body,
                line: Some(line),
            }),
        )))
    }
}

/// The fields of one access line, written once.
struct AccessLine {
    method: Method,
    route: Option<MatchedPath>,
    path: String,
    /// The response's status; none while it is not produced.
    status: Option<StatusCode>,
    started: Instant,
    facts: AccessFacts,
    /// The request's span (the HTTP SERVER span when telemetry is on).
    span: OtelSpan,
}

impl AccessLine {
    fn write(self, outcome: &'static str) {
        let facts = self.facts.0.lock().unwrap_or_else(|e| e.into_inner());
        let _attached = self.span.attach();
        let route = self
            .route
            .as_ref()
            .map_or("(unmatched)", MatchedPath::as_str);
        let seconds = self.started.elapsed().as_secs_f64();
        let status = self
            .status
            .map_or(CLIENT_CLOSED_REQUEST, |status| status.as_u16());
        inferd_telemetry::AccessLine {
            method: self.method.as_str(),
            route,
            path: &self.path,
            status,
            seconds,
            model: facts.model.as_deref(),
            key_id: facts.key_id.as_deref(),
            input_tokens: facts.prompt_tokens,
            output_tokens: facts.completion_tokens,
            outcome,
        }
        .write();
    }
}

/// The response body, passed through untouched; its end (or its drop before the end, when the
/// client disconnects) writes the access line.
struct LoggedBody {
    inner: Body,
    line: Option<AccessLine>,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write("complete");
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(line) = self.line.take() {
                    line.write("body_error");
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            // Hyper drops a body it has fully sent without polling past its end when the
            // body said it was complete; only an unfinished body means the client left.
            let outcome = if self.inner.is_end_stream() {
                "complete"
            } else {
                "client_closed"
            };
            line.write(outcome);
        }
    }
}
