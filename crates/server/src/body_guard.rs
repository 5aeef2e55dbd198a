//! Keeps a value alive until a response body has been sent (or dropped, when the client goes
//! away): for counts of answers in progress, which for a stream last well past the handler.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;

/// `response` with `guard` dropped when its body ends.
pub(crate) fn hold_until_sent<G: Send + Sync + 'static>(response: Response, guard: G) -> Response {
    response.map(|body| {
        Body::new(Guarded {
            body,
            _guard: guard,
        })
    })
}

pin_project_lite::pin_project! {
    struct Guarded<G> {
        #[pin]
        body: Body,
        _guard: G,
    }
}

impl<G> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
