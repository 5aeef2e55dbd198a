//! What code outside the subscriber needs from it, carried by the subscriber itself: inferd's
//! tracer (for spans started outside any request) and the log writer (for access lines written
//! without tracing's dispatch). One layer that sees nothing (filter `OFF`), found by
//! downcasting the current dispatcher, so a scoped subscriber (tests) brings its own.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::SdkTracer;
use tracing::Dispatch;

/// Writes one whole line to the log writer.
pub(crate) type LineSinkFn = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The handles; see the module documentation.
pub(crate) struct Handles {
    /// `None` when telemetry is off.
    pub(crate) tracer: Option<SdkTracer>,
    /// The JSON log layer's writer, shared; `None` for pretty lines or when the OTLP logs
    /// bridge needs every line as a tracing event.
    pub(crate) lines: Option<LineSinkFn>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Handles {}

/// Whether any subscriber built so far carries a tracer: when none does (telemetry off),
/// [`dispatch_tracer`] need not look.
static TRACER_BUILT: AtomicBool = AtomicBool::new(false);

impl Handles {
    pub(crate) fn new(tracer: Option<SdkTracer>, lines: Option<LineSinkFn>) -> Self {
        if tracer.is_some() {
            TRACER_BUILT.store(true, Ordering::Relaxed);
        }
        Self { tracer, lines }
    }
}

/// The tracer of the current subscriber, if telemetry is on.
pub(crate) fn dispatch_tracer() -> Option<SdkTracer> {
    if !TRACER_BUILT.load(Ordering::Relaxed) {
        return None;
    }
    tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<Handles>()
            .and_then(|handles| handles.tracer.clone())
    })
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
