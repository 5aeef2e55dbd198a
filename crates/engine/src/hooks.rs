//! The hooks bus: how telemetry (and any other plugin) observes generations without backends
//! knowing about it. Observers are registered once at start-up; for each generation the bus
//! calls every observer's [`Observer::pre_call`] in line (so an observer can open a
//! span that covers the whole call), then reports the first token, and exactly one of
//! success ([`GenerationCall::post_call`]) or failure ([`GenerationCall::error`]). A generation
//! dropped before either (the client went away) is reported as an error of type `cancelled`.
//!
//! The local engine reports each request it runs the same way, as typed events on a
//! [`SequenceCall`]: queued, admitted to a slot, first token, timed out, finished, cancelled or
//! failed. The engine makes no span and writes no line about them: the plugins do, from
//! these reports (the `model.queue` and `model.infer` spans and the engine's log lines come
//! from one plugin, registered with telemetry off too, since log lines are always written).
//!
//! Adding a plugin: implement [`Observer`] (and the per-call [`GenerationCall`] or
//! [`SequenceCall`] it returns) and pass it to [`HooksBus::new`] at start-up. Hooks run on the
//! request path or the engine thread, so they must only record (no I/O, no waiting).

use std::sync::Arc;
use std::time::{Duration, Instant};

use inferd_openai::Api;
use inferd_otel::OtelSpan;

use crate::{EngineTimings, FinishReason, Prompt, SamplingParams, Usage};

/// What is known when a generation starts.
#[derive(Debug, Clone)]
pub struct GenerationStart {
    /// inferd's own correlation id, distinct from the response id.
    pub generation_id: String,
    /// The endpoint asked; its GenAI operation is `gen_ai.operation.name`. Embeddings are
    /// only ever of a remote model (passed through to its upstream).
    pub api: Api,
    /// The model id the client asked for. Strings observers copy into spans and metrics are
    /// shared.
    pub model: Arc<str>,
    /// Whether `model` names a model this server has. A client can send any string: an unknown
    /// one must not become a metric label or a span name (unbounded cardinality).
    pub model_known: bool,
    /// Who serves it (`gen_ai.provider.name`).
    pub provider: Arc<str>,
    /// The upstream's address and port when a remote server answers (the generation is then
    /// a client call: CLIENT span, `gen_ai.client.operation.duration`).
    pub server: Option<(Arc<str>, u16)>,
    pub params: SamplingParams,
    pub stream: bool,
    /// The prompt, only when content capture is on (it is copied for observers).
    pub captured_prompt: Option<Prompt>,
}

/// What is known when a generation ends well.
#[derive(Debug, Clone)]
pub struct GenerationEnd {
    pub response_id: String,
    pub response_model: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: GenerationTimings,
    /// Queue, prefill and decode times, when the backend measured them.
    pub engine_timings: Option<EngineTimings>,
    /// The generated text, only when content capture is on.
    pub captured_output: Option<String>,
}

/// Why a generation failed.
#[derive(Debug, Clone)]
pub struct GenerationFailure {
    /// A short stable label (`error.type`): `model_not_found`, `overloaded`, `cancelled`, …
    pub error_type: String,
    pub message: String,
    pub timings: GenerationTimings,
}

/// Durations measured by the bus, from the moment the generation started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationTimings {
    /// Start to end (success or failure).
    pub duration: Duration,
    /// Start to the first generated text, when there was any.
    pub time_to_first_token: Option<Duration>,
    /// Mean time between output tokens after the first, when there were at least two.
    pub time_per_output_token: Option<Duration>,
    /// Mean time between the chunks of a stream after the first, when there were at least
    /// two (an upstream's stream may carry several tokens in one chunk).
    pub time_per_output_chunk: Option<Duration>,
}

/// A model load starting, as reported to observers.
#[derive(Debug, Clone, Copy)]
pub struct LoadStarted<'a> {
    pub model_id: &'a str,
    /// The context of what asked for the load (the request's, or none at start-up).
    pub parent: &'a opentelemetry::Context,
}

/// How a local engine was started, reported once its model is in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStarted {
    pub model_id: String,
    /// The model file.
    pub path: String,
    /// Tokens of KV cache each slot has.
    pub context_length: u32,
    pub threads: u32,
    /// Slots (sequences decoded together).
    pub parallel: u32,
    /// Most prompt tokens one step processes.
    pub prefill_chunk: u32,
    pub has_chat_template: bool,
}

/// A model load that ended, as reported to observers.
#[derive(Debug, Clone)]
pub struct ModelLoad {
    pub model_id: String,
    /// Where the artifacts came from (`inferd.model.artifacts.source`): `local_cache`, `http`, …
    pub source: &'static str,
    pub duration: Duration,
    pub result: Result<(), LoadFailed>,
}

/// Why a model load failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailed {
    /// As [`crate::EngineError::kind`].
    pub error_type: &'static str,
    pub message: String,
}

/// One observer's view of one model load: [`LoadCall::engine_started`] when the model is in
/// memory, then [`LoadCall::finished`]; dropped unfinished when whoever waited for the load
/// went away.
pub trait LoadCall: Send + Sync {
    /// The context the load's work runs in (an observer's span, which the artifact steps and
    /// llama.cpp's lines then belong to).
    fn context(&self) -> Option<&opentelemetry::Context> {
        None
    }
    /// The local engine started.
    fn engine_started(&mut self, _engine: &EngineStarted) {}
    /// The load succeeded or failed.
    fn finished(self: Box<Self>, _load: &ModelLoad) {}
}

/// The observers' views of one model load or unload (see [`LoadCall`], [`UnloadCall`]).
pub struct Observed<C: ?Sized> {
    calls: Vec<Box<C>>,
    /// What the work runs in: the first observer's span's context, else its parent.
    context: opentelemetry::Context,
    bus: HooksBus,
}

/// The observers' views of one model load.
pub type ObservedLoad = Observed<dyn LoadCall>;

/// The observers' views of one unload.
pub type ObservedUnload = Observed<dyn UnloadCall>;

impl<C: ?Sized> std::fmt::Debug for Observed<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("observers", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl<C: ?Sized> Observed<C> {
    /// The context to run the work in, on whichever thread or task it runs.
    pub fn context(&self) -> &opentelemetry::Context {
        &self.context
    }
}

impl ObservedLoad {
    /// Reports the started engine.
    pub fn engine_started(&mut self, engine: &EngineStarted) {
        self.calls.iter_mut().for_each(|c| c.engine_started(engine));
    }

    /// Reports the load's end, to its calls and then to every observer's
    /// [`Observer::model_loaded`].
    pub fn finished(self, load: &ModelLoad) {
        for call in self.calls {
            call.finished(load);
        }
        for observer in self.bus.observers.iter() {
            observer.model_loaded(load);
        }
    }
}

impl ObservedUnload {
    /// Reports the unload, to its calls and then to every observer's
    /// [`Observer::model_unloaded`].
    pub fn finished(self, unload: &ModelUnload) {
        for call in self.calls {
            call.finished(unload);
        }
        for observer in self.bus.observers.iter() {
            observer.model_unloaded(unload);
        }
    }
}

/// A model unload starting, as reported to observers.
#[derive(Debug, Clone, Copy)]
pub struct UnloadStarted<'a> {
    pub model_id: &'a str,
    /// `admin` (asked for) or `evicted` (room for another under the memory budget).
    pub reason: &'static str,
    /// The context of what asked for it.
    pub parent: &'a opentelemetry::Context,
}

/// One observer's view of one unload: [`UnloadCall::finished`] when the model left memory;
/// dropped unfinished when the unload was refused (the model was busy or not loaded).
pub trait UnloadCall: Send + Sync {
    /// The context the unload runs in.
    fn context(&self) -> Option<&opentelemetry::Context> {
        None
    }
    /// The model left memory.
    fn finished(self: Box<Self>, _unload: &ModelUnload) {}
}

/// A model left memory.
#[derive(Debug, Clone)]
pub struct ModelUnload {
    pub model_id: String,
    /// `admin` (asked for) or `evicted` (room for another under the memory budget).
    pub reason: &'static str,
}

/// What a run of batched engine steps did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPhase {
    /// One step that processed a chunk of at least one prompt (decoding members may ride along).
    Prefill,
    /// Consecutive steps that decoded one token for each member, membership unchanged.
    Decode,
}

impl BatchPhase {
    /// The name in telemetry (`inferd.batch.phase`).
    pub fn as_str(self) -> &'static str {
        match self {
            BatchPhase::Prefill => "prefill",
            BatchPhase::Decode => "decode",
        }
    }
}

/// One sequence in a batch run.
#[derive(Debug, Clone)]
pub struct BatchMember {
    /// The span context of the member's generation (invalid when telemetry is off or the
    /// request was not sampled): a batch span links to it.
    pub generation: opentelemetry::trace::SpanContext,
    /// Tokens of this member the run decoded (prompt tokens for a prefill chunk).
    pub tokens: u32,
}

/// One prefill step, or a run of decode steps with the same members, of one model's engine.
/// Reported once, when the run ends.
#[derive(Debug, Clone)]
pub struct BatchRun<'a> {
    pub model: &'a str,
    pub phase: BatchPhase,
    /// The sequences that shared the run's steps.
    pub members: &'a [BatchMember],
    /// llama.cpp decode calls in the run.
    pub steps: u32,
    /// Tokens decoded over the run, all members together.
    pub tokens: u64,
    /// When the first step started (wall clock, for span start times) and how long the run
    /// took.
    pub started_at: std::time::SystemTime,
    pub duration: Duration,
}

/// The state of one local model's engine, reported when it changes (a sequence admitted or
/// ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineLoad {
    /// Sequences the engine runs at once (`--parallel`).
    pub slots: u32,
    /// Sequences holding a slot now (prefilling or decoding).
    pub running: u32,
    /// Requests accepted and waiting for a slot.
    pub waiting: u32,
    /// Most requests that may wait (`--max-queue`); past it requests are refused (503).
    pub queue_limit: u32,
    /// KV cache cells (tokens) of all slots together.
    pub kv_cells: u32,
    /// Cells holding running sequences' tokens.
    pub kv_cells_running: u32,
    /// Cells holding the prompt cache of idle slots.
    pub kv_cells_cached: u32,
}

impl EngineLoad {
    /// Share of the KV cache in use by running sequences, 0 to 1.
    pub fn kv_usage(&self) -> f64 {
        if self.kv_cells == 0 {
            return 0.0;
        }
        f64::from(self.kv_cells_running) / f64::from(self.kv_cells)
    }
}

/// A request a local engine accepted into its queue, as reported to observers.
#[derive(Debug, Clone, Copy)]
pub struct SequenceQueued<'a> {
    pub model: &'a str,
    /// The generation's context (its span's when telemetry is on): what an observer's spans
    /// about the sequence are children of, on whichever thread the later events come.
    pub parent: &'a opentelemetry::Context,
    /// Requests that were waiting ahead of it.
    pub position: usize,
}

/// How a sequence that ran to its end finished.
#[derive(Debug, Clone, Copy)]
pub struct SequenceFinished {
    pub finish_reason: FinishReason,
    /// Prompt tokens, tokens generated, and prompt tokens reused from the slot's cache.
    pub usage: Usage,
}

/// One observer's view of one request a local engine runs (a sequence): reported on the
/// engine thread, in this order: [`SequenceCall::admitted`] when it takes a slot, then
/// [`SequenceCall::first_token`], then at most one of the ends (`finished`, `cancelled`,
/// `failed`; `timed_out` comes just before its `finished`). A client that leaves while its
/// sequence waits in the queue is reported as `cancelled` without `admitted`. The call is
/// dropped when the sequence leaves its slot, or when it never got one (refused as
/// overloaded, the engine stopped, the client left). Record only: the engine waits for each.
pub trait SequenceCall: Send {
    /// The sequence took a slot: its prompt is processed from now on.
    fn admitted(&mut self) {}
    /// The first token was sampled.
    fn first_token(&mut self) {}
    /// The generation timeout ended the sequence (its `finished` follows).
    fn timed_out(&mut self) {}
    /// The sequence finished; its client has had all its text.
    fn finished(&mut self, _finished: &SequenceFinished) {}
    /// The client went away before the sequence finished (or before it took a slot).
    fn cancelled(&mut self) {}
    /// The engine failed the sequence (`error_type` as [`crate::EngineError::kind`]).
    fn failed(&mut self, _error_type: &'static str, _message: &str) {}
}

/// The observers' views of one sequence; see [`SequenceCall`]. Empty (and free) when no
/// observer watches sequences.
#[derive(Default)]
pub struct ObservedSequence {
    calls: Vec<Box<dyn SequenceCall>>,
}

impl std::fmt::Debug for ObservedSequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedSequence")
            .field("observers", &self.calls.len())
            .finish()
    }
}

impl ObservedSequence {
    /// Reports the admission into a slot.
    pub fn admitted(&mut self) {
        self.calls.iter_mut().for_each(|c| c.admitted());
    }

    /// Reports the first sampled token.
    pub fn first_token(&mut self) {
        self.calls.iter_mut().for_each(|c| c.first_token());
    }

    /// Reports that the generation timeout ended the sequence.
    pub fn timed_out(&mut self) {
        self.calls.iter_mut().for_each(|c| c.timed_out());
    }

    /// Reports the sequence's finish.
    pub fn finished(&mut self, finished: &SequenceFinished) {
        self.calls.iter_mut().for_each(|c| c.finished(finished));
    }

    /// Reports that the client went away.
    pub fn cancelled(&mut self) {
        self.calls.iter_mut().for_each(|c| c.cancelled());
    }

    /// Reports the engine's failure.
    pub fn failed(&mut self, error_type: &'static str, message: &str) {
        self.calls
            .iter_mut()
            .for_each(|c| c.failed(error_type, message));
    }
}

/// Rewrites captured prompt and completion text before it is recorded (e.g. masks e-mail
/// addresses or account numbers). Applied to each message's text, before truncation.
pub trait Redactor: Send + Sync + std::fmt::Debug {
    fn redact(&self, text: &str) -> String;
}

/// A plugin that observes generations and model loads.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Called in line when a generation starts; the returned call object receives the rest of
    /// this generation's events (`None`: the observer does not follow generations).
    fn generation_pre_call(&self, _start: &GenerationStart) -> Option<Box<dyn GenerationCall>> {
        None
    }

    /// A local engine queued a request; the returned call object receives the rest of its
    /// events (see [`SequenceCall`]; `None`: the observer does not follow sequences).
    fn sequence_queued(&self, _queued: &SequenceQueued<'_>) -> Option<Box<dyn SequenceCall>> {
        None
    }

    /// A model load starts; the returned call object receives the rest of its events (see
    /// [`LoadCall`]; `None`: the observer does not follow loads one by one).
    fn model_load_started(&self, _started: &LoadStarted<'_>) -> Option<Box<dyn LoadCall>> {
        None
    }

    /// A model finished loading, or failed to.
    fn model_loaded(&self, _load: &ModelLoad) {}

    /// A model unload starts (see [`UnloadCall`]).
    fn model_unload_started(&self, _started: &UnloadStarted<'_>) -> Option<Box<dyn UnloadCall>> {
        None
    }

    /// A model was unloaded.
    fn model_unloaded(&self, _unload: &ModelUnload) {}

    /// Requests waiting for `model`'s engine changed by `delta` (+1 enqueued, -1 dequeued).
    fn queue_changed(&self, _model: &str, _delta: i64) {}

    /// A batch run of `run.model`'s engine ended (see [`BatchRun`]). Runs on the engine
    /// thread: record only.
    fn batch_run(&self, _run: &BatchRun<'_>) {}

    /// Whether [`Observer::batch_run`] records anything: when no observer's does, the engine
    /// builds no batch reports.
    fn observes_batch_runs(&self) -> bool {
        true
    }

    /// `model`'s engine state changed. Runs on the engine thread: record only.
    fn engine_load(&self, _model: &str, _load: &EngineLoad) {}

    /// A request was refused before any generation started (invalid JSON, a bad field, an
    /// unsupported option). Runs in line, inside the request's span.
    fn request_rejected(&self, _error_type: &str, _message: &str) {}
}

/// One observer's view of one generation.
pub trait GenerationCall: Send {
    /// The span that must be current while the backend works on this generation, so the
    /// backend's own spans (queue, inference) become its children.
    fn span(&self) -> Option<&OtelSpan> {
        None
    }
    /// The first text was produced.
    fn first_token(&mut self, _elapsed: Duration) {}
    /// The request went to another upstream than `GenerationStart::server` named (a replica
    /// took over); `post_call` and `error` then see the new one in `start.server`.
    fn server_changed(&mut self, _address: &str, _port: u16) {}
    /// The generation finished.
    fn post_call(self: Box<Self>, start: &GenerationStart, end: &GenerationEnd);
    /// The generation failed or was cancelled.
    fn error(self: Box<Self>, start: &GenerationStart, failure: &GenerationFailure);
}

/// The registered observers.
#[derive(Debug, Clone, Default)]
pub struct HooksBus {
    observers: Arc<[Arc<dyn Observer>]>,
    /// Whether any observer records batch runs.
    batch_runs: bool,
}

impl HooksBus {
    /// A bus with these observers (none: every hook is a no-op).
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Self {
            batch_runs: observers.iter().any(|o| o.observes_batch_runs()),
            observers: observers.into(),
        }
    }

    /// Starts observing a model load.
    pub fn model_load_started(&self, started: &LoadStarted<'_>) -> ObservedLoad {
        self.observe(
            |o| o.model_load_started(started),
            |c| c.context(),
            started.parent,
        )
    }

    /// Starts observing a model unload.
    pub fn model_unload_started(&self, started: &UnloadStarted<'_>) -> ObservedUnload {
        self.observe(
            |o| o.model_unload_started(started),
            |c| c.context(),
            started.parent,
        )
    }

    /// The calls `start` gets from the observers, run in the first one's context (else in
    /// `parent`).
    fn observe<C: ?Sized>(
        &self,
        start: impl Fn(&Arc<dyn Observer>) -> Option<Box<C>>,
        context: impl Fn(&C) -> Option<&opentelemetry::Context>,
        parent: &opentelemetry::Context,
    ) -> Observed<C> {
        let calls: Vec<Box<C>> = self.observers.iter().filter_map(start).collect();
        let context = calls
            .iter()
            .find_map(|c| context(c).cloned())
            .unwrap_or_else(|| parent.clone());
        Observed {
            calls,
            context,
            bus: self.clone(),
        }
    }

    /// Reports a change of a model's queue length to every observer.
    pub fn queue_changed(&self, model: &str, delta: i64) {
        for observer in self.observers.iter() {
            observer.queue_changed(model, delta);
        }
    }

    /// Reports a finished batch run to every observer.
    pub fn batch_run(&self, run: &BatchRun<'_>) {
        for observer in self.observers.iter() {
            observer.batch_run(run);
        }
    }

    /// Reports an engine's new state to every observer.
    pub fn engine_load(&self, model: &str, load: &EngineLoad) {
        for observer in self.observers.iter() {
            observer.engine_load(model, load);
        }
    }

    /// Whether any observer records batch runs (the engine builds batch reports only then).
    pub fn observes_batch_runs(&self) -> bool {
        self.batch_runs
    }

    /// Starts observing a request a local engine queued.
    pub fn sequence_queued(&self, queued: &SequenceQueued<'_>) -> ObservedSequence {
        ObservedSequence {
            calls: self
                .observers
                .iter()
                .filter_map(|o| o.sequence_queued(queued))
                .collect(),
        }
    }

    /// Reports a request refused before generation to every observer.
    pub fn request_rejected(&self, error_type: &str, message: &str) {
        for observer in self.observers.iter() {
            observer.request_rejected(error_type, message);
        }
    }

    /// Starts observing a generation.
    pub fn start(&self, start: GenerationStart) -> ActiveGeneration {
        let calls = self
            .observers
            .iter()
            .filter_map(|o| o.generation_pre_call(&start))
            .collect();
        let captured_output = start.captured_prompt.as_ref().map(|_| String::new());
        ActiveGeneration {
            start,
            started_at: Instant::now(),
            first_token_at: None,
            last_chunk_at: None,
            chunks: 0,
            calls,
            captured_output,
        }
    }
}

/// A generation being observed. Report its end with [`ActiveGeneration::finish`] or
/// [`ActiveGeneration::fail`]; dropping it unreported reports `cancelled`.
pub struct ActiveGeneration {
    start: GenerationStart,
    started_at: Instant,
    first_token_at: Option<Instant>,
    last_chunk_at: Option<Instant>,
    /// Text chunks seen (counted only where their times mean something).
    chunks: u32,
    calls: Vec<Box<dyn GenerationCall>>,
    /// The output so far, when content capture is on.
    captured_output: Option<String>,
}

impl std::fmt::Debug for ActiveGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveGeneration")
            .field("start", &self.start)
            .field("observers", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl ActiveGeneration {
    /// The span observers want current during the backend call, if any.
    pub fn span(&self) -> Option<&OtelSpan> {
        self.calls.iter().find_map(|call| call.span())
    }

    /// The upstream that took the request (see [`GenerationCall::server_changed`]); nothing
    /// happens when it is the one the generation started with.
    pub fn served_by(&mut self, server: &(Arc<str>, u16)) {
        if self.start.server.as_ref() == Some(server) {
            return;
        }
        self.start.server = Some(server.clone());
        for call in &mut self.calls {
            call.server_changed(&server.0, server.1);
        }
    }

    /// The output will not arrive as text (a passed-through answer goes on as the upstream's
    /// JSON): none is captured, rather than an empty one.
    pub fn skip_output_capture(&mut self) {
        self.captured_output = None;
    }

    /// Notes generated text (kept only when content capture is on); the first call marks the
    /// first token. An upstream's answer that is not streamed arrives whole, so its arrival
    /// says nothing of when the first token was made: no token times are taken from it.
    pub fn token(&mut self, text: &str) {
        if let Some(output) = self.captured_output.as_mut() {
            output.push_str(text);
        }
        if !self.chunk_times_known() {
            return;
        }
        let now = Instant::now();
        self.chunks = self.chunks.saturating_add(1);
        self.last_chunk_at = Some(now);
        if self.first_token_at.is_none() {
            self.first_token_at = Some(now);
            let elapsed = now - self.started_at;
            for call in &mut self.calls {
                call.first_token(elapsed);
            }
        }
    }

    /// Whether the times text arrives at are the times it was made: always for a local
    /// engine, only for a streamed answer from an upstream.
    fn chunk_times_known(&self) -> bool {
        self.start.server.is_none() || self.start.stream
    }

    /// Reports success.
    pub fn finish(
        mut self,
        response_id: String,
        response_model: String,
        finish_reason: FinishReason,
        usage: Usage,
        engine_timings: Option<EngineTimings>,
    ) {
        let end = GenerationEnd {
            response_id,
            response_model,
            finish_reason,
            timings: self.timings(usage.completion_tokens),
            usage,
            engine_timings,
            captured_output: self.captured_output.take(),
        };
        for call in std::mem::take(&mut self.calls) {
            call.post_call(&self.start, &end);
        }
    }

    /// Reports failure.
    pub fn fail(mut self, error_type: &str, message: &str) {
        self.report_failure(error_type, message);
    }

    fn report_failure(&mut self, error_type: &str, message: &str) {
        let failure = GenerationFailure {
            error_type: error_type.to_owned(),
            message: message.to_owned(),
            timings: self.timings(0),
        };
        for call in std::mem::take(&mut self.calls) {
            call.error(&self.start, &failure);
        }
    }

    fn timings(&self, completion_tokens: u32) -> GenerationTimings {
        let now = Instant::now();
        let time_per_output_token = match (self.first_token_at, completion_tokens) {
            (Some(first), n) if n >= 2 => Some((now - first) / (n - 1)),
            _ => None,
        };
        let time_per_output_chunk = match (self.first_token_at, self.last_chunk_at) {
            (Some(first), Some(last)) if self.chunks >= 2 => {
                Some((last - first) / (self.chunks - 1))
            }
            _ => None,
        };
        GenerationTimings {
            duration: now - self.started_at,
            time_to_first_token: self.first_token_at.map(|t| t - self.started_at),
            time_per_output_token,
            time_per_output_chunk,
        }
    }
}

impl Drop for ActiveGeneration {
    fn drop(&mut self) {
        if !self.calls.is_empty() {
            self.report_failure(
                "cancelled",
                "the client went away before the generation ended",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Recorder {
        events: Arc<Mutex<Vec<String>>>,
    }

    struct RecorderCall {
        events: Arc<Mutex<Vec<String>>>,
    }

    impl Observer for Recorder {
        fn generation_pre_call(&self, start: &GenerationStart) -> Option<Box<dyn GenerationCall>> {
            self.events
                .lock()
                .expect("lock")
                .push(format!("pre {}", start.generation_id));
            Some(Box::new(RecorderCall {
                events: Arc::clone(&self.events),
            }))
        }
    }

    impl GenerationCall for RecorderCall {
        fn first_token(&mut self, _elapsed: Duration) {
            self.events.lock().expect("lock").push("first".into());
        }
        fn post_call(self: Box<Self>, _start: &GenerationStart, end: &GenerationEnd) {
            self.events.lock().expect("lock").push(format!(
                "post {} tpot={}",
                end.usage.completion_tokens,
                end.timings.time_per_output_token.is_some()
            ));
        }
        fn server_changed(&mut self, address: &str, port: u16) {
            self.events
                .lock()
                .expect("lock")
                .push(format!("server {address}:{port}"));
        }
        fn error(self: Box<Self>, start: &GenerationStart, failure: &GenerationFailure) {
            let server = match &start.server {
                Some((address, port)) => format!(" at {address}:{port}"),
                None => String::new(),
            };
            self.events
                .lock()
                .expect("lock")
                .push(format!("error {}{server}", failure.error_type));
        }
    }

    fn start(id: &str) -> GenerationStart {
        GenerationStart {
            model_known: true,
            generation_id: id.into(),
            api: Api::Chat,
            model: "m".into(),
            provider: "inferd".into(),
            server: None,
            params: SamplingParams::default(),
            stream: true,
            captured_prompt: None,
        }
    }

    #[test]
    fn success_reports_pre_first_token_once_and_post() {
        let recorder = Arc::new(Recorder::default());
        let events = Arc::clone(&recorder.events);
        let bus = HooksBus::new(vec![recorder]);
        let mut generation = bus.start(start("g1"));
        generation.token("a");
        generation.token("b");
        generation.finish(
            "r".into(),
            "m".into(),
            FinishReason::Stop,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                cached_tokens: 0,
            },
            None,
        );
        assert_eq!(
            *events.lock().expect("lock"),
            vec!["pre g1", "first", "post 2 tpot=true"]
        );
    }

    #[test]
    fn dropping_unfinished_generation_reports_cancelled_once() {
        let recorder = Arc::new(Recorder::default());
        let events = Arc::clone(&recorder.events);
        let bus = HooksBus::new(vec![recorder]);
        drop(bus.start(start("g2")));
        let generation = bus.start(start("g3"));
        generation.fail("overloaded", "full");
        assert_eq!(
            *events.lock().expect("lock"),
            vec!["pre g2", "error cancelled", "pre g3", "error overloaded"]
        );
    }

    #[test]
    fn a_replica_taking_over_is_reported_once_and_seen_at_the_end() {
        let recorder = Arc::new(Recorder::default());
        let events = Arc::clone(&recorder.events);
        let bus = HooksBus::new(vec![recorder]);
        let mut first_choice = start("g5");
        first_choice.server = Some(("a.example".into(), 8000));
        let mut generation = bus.start(first_choice);
        // The first choice itself: nothing changes.
        generation.served_by(&("a.example".into(), 8000));
        generation.served_by(&("b.example".into(), 8001));
        generation.fail("upstream_error", "cut");
        assert_eq!(
            *events.lock().expect("lock"),
            vec![
                "pre g5",
                "server b.example:8001",
                "error upstream_error at b.example:8001"
            ]
        );
    }

    #[test]
    fn a_whole_upstream_answer_has_no_token_times_and_a_stream_has_chunk_times() {
        let recorder = Arc::new(Recorder::default());
        let events = Arc::clone(&recorder.events);
        let bus = HooksBus::new(vec![recorder]);
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 5,
            cached_tokens: 0,
        };
        let mut whole = start("g6");
        whole.server = Some(("a.example".into(), 8000));
        whole.stream = false;
        let mut generation = bus.start(whole.clone());
        assert!(generation.timings(5).time_to_first_token.is_none());
        generation.token("the whole answer");
        let timings = generation.timings(5);
        assert_eq!(
            (timings.time_to_first_token, timings.time_per_output_token),
            (None, None)
        );
        generation.finish("r".into(), "m".into(), FinishReason::Stop, usage, None);
        assert_eq!(
            *events.lock().expect("lock"),
            vec!["pre g6", "post 5 tpot=false"]
        );

        whole.stream = true;
        let mut generation = bus.start(whole);
        generation.token("a");
        assert!(generation.timings(5).time_per_output_chunk.is_none());
        generation.token("bc");
        let timings = generation.timings(5);
        assert!(timings.time_to_first_token.is_some());
        assert!(timings.time_per_output_chunk.is_some());
        assert!(timings.time_per_output_token.is_some());
    }

    #[test]
    fn empty_bus_is_a_no_op() {
        let bus = HooksBus::default();
        let mut generation = bus.start(start("g4"));
        generation.token("x");
        generation.finish(
            "r".into(),
            "m".into(),
            FinishReason::Length,
            Usage::default(),
            None,
        );
    }
}
