//! What code outside the subscriber needs from it, carried by the subscriber itself: the log
//! writer (for access lines written without tracing's dispatch). One layer that sees nothing
//! (filter `OFF`), found by downcasting the current dispatcher, so a scoped subscriber (tests)
//! brings its own.

use tracing::Dispatch;

/// Writes one whole line to the log writer.
pub(crate) type LineSinkFn = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The handles; see the module documentation.
pub(crate) struct Handles {
    /// The JSON log layer's writer, shared; `None` for pretty lines or when the OTLP logs
    /// bridge needs every line as a tracing event.
    pub(crate) lines: Option<LineSinkFn>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Handles {}

impl Handles {
    pub(crate) fn new(lines: Option<LineSinkFn>) -> Self {
        Self { lines }
    }
}

/// Runs `f` with the current subscriber's log writer and the dispatcher; `None` when it has
/// none (see [`Handles::lines`]).
pub(crate) fn with_line_sink<R>(f: impl FnOnce(&LineSinkFn, &Dispatch) -> R) -> Option<R> {
    // `get_default` takes an `FnMut`; it calls it once.
    let mut f = Some(f);
    tracing::dispatcher::get_default(|dispatch| {
        let sink = dispatch.downcast_ref::<Handles>()?.lines.as_ref()?;
        f.take().map(|f| f(sink, dispatch))
    })
}
