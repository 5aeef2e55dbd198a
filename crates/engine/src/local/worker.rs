//! The engine thread: owns the llama.cpp context of one model and runs its jobs one at a time.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inferd_telemetry::record_error;
use inferd_telemetry::semconv as sc;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use tokio::sync::mpsc;

use super::Job;
use crate::hooks::HooksBus;
use crate::text::{StopMatcher, Utf8Assembler};
use crate::{EngineError, EngineTimings, FinishReason, GenerationEvent, SamplingParams, Usage};

/// Tokens looked back at for frequency/presence penalties (llama.cpp's default window).
const PENALTY_WINDOW: i32 = 64;

/// What the engine thread needs besides its queue.
pub(super) struct Worker {
    pub(super) model_id: String,
    pub(super) hooks: HooksBus,
    pub(super) model: Arc<LlamaModel>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) prefill_chunk: u32,
}

/// How a job ended from the engine's point of view.
enum Outcome {
    Finished,
    /// The client went away; nothing more to send.
    Cancelled,
}

impl Worker {
    /// Creates the context, reports start-up success on `ready`, then serves jobs until the
    /// queue's sending side is dropped (the model was unloaded or the process is exiting).
    pub(super) fn run(
        self,
        backend: &'static LlamaBackend,
        params: LlamaContextParams,
        mut jobs: mpsc::Receiver<Job>,
        ready: std::sync::mpsc::SyncSender<Result<(), String>>,
    ) {
        let mut ctx = match self.model.new_context(backend, params) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot create llama.cpp context: {e}")));
                return;
            }
        };
        let batch_size = usize::try_from(self.prefill_chunk).unwrap_or(512);
        let mut batch = LlamaBatch::new(batch_size, 1);
        if ready.send(Ok(())).is_err() {
            return;
        }
        while let Some(mut job) = jobs.blocking_recv() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.hooks.queue_changed(&self.model_id, -1);
            let queue_time = job.enqueued_at.elapsed();
            // A span ends at its last exit: enter the queue span once as the wait ends.
            let queue_span = std::mem::replace(&mut job.queue_span, tracing::Span::none());
            queue_span.in_scope(|| {});
            drop(queue_span);
            if job.events.is_closed() {
                continue; // the client left while waiting in the queue
            }
            let _parent = job.parent.clone().attach();
            let infer = tracing::info_span!("infer", otel.name = sc::SPAN_MODEL_INFER);
            let _entered = infer.enter();
            match self.generate(&mut ctx, &mut batch, &job, queue_time) {
                Ok(Outcome::Finished) => {}
                Ok(Outcome::Cancelled) => {
                    record_error(&infer, "cancelled", "the client went away");
                }
                Err(err) => {
                    tracing::error!(error = %err, "generation failed");
                    record_error(&infer, err.kind(), &err.to_string());
                    let _ = job.events.send(Err(err));
                }
            }
        }
    }

    /// Processes the prompt, then samples and streams tokens until a stop condition.
    fn generate(
        &self,
        ctx: &mut LlamaContext<'_>,
        batch: &mut LlamaBatch<'_>,
        job: &Job,
        queue_time: Duration,
    ) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let decode_error = |e: llama_cpp_2::DecodeError| EngineError::Inference(e.to_string());
        let batch_error =
            |e: llama_cpp_2::llama_batch::BatchAddError| EngineError::Inference(e.to_string());
        ctx.clear_kv_cache();

        let prompt_len = job.tokens.len();
        let chunk = usize::try_from(self.prefill_chunk).unwrap_or(512);
        for (chunk_index, tokens) in job.tokens.chunks(chunk).enumerate() {
            batch.clear();
            for (offset, token) in tokens.iter().enumerate() {
                let pos = chunk_index * chunk + offset;
                batch
                    .add(*token, to_pos(pos), &[0], pos + 1 == prompt_len)
                    .map_err(batch_error)?;
            }
            ctx.decode(batch).map_err(decode_error)?;
            if job.events.is_closed() {
                return Ok(Outcome::Cancelled);
            }
        }

        let vocab = self.model.vocab();
        let mut sampler = build_sampler(&job.params, self.model.n_vocab());
        let mut utf8 = Utf8Assembler::default();
        let mut stops = StopMatcher::new(&job.params.stop);
        let mut position = prompt_len;
        let mut completion_tokens = 0u32;
        let send = |text: String| -> bool {
            text.is_empty() || job.events.send(Ok(GenerationEvent::Delta(text))).is_ok()
        };

        let mut timings = EngineTimings {
            queue: queue_time,
            ..EngineTimings::default()
        };
        let finish_reason = loop {
            if completion_tokens >= job.max_new_tokens {
                break FinishReason::Length;
            }
            let token = sampler.sample(ctx, batch.n_tokens() - 1);
            if completion_tokens == 0 {
                timings.prefill = started.elapsed();
                tracing::info!("first_token");
            }
            if vocab.is_eog(token) && !job.params.ignore_eos {
                break FinishReason::Stop;
            }
            completion_tokens += 1;
            let text = utf8.push(&vocab.token_to_piece(token, false, None));
            let scan = stops.push(&text);
            if !send(scan.emit) {
                return Ok(Outcome::Cancelled);
            }
            if scan.stopped {
                timings.decode = started.elapsed().saturating_sub(timings.prefill);
                return self.finish(job, FinishReason::Stop, completion_tokens, timings, None);
            }
            if completion_tokens >= job.max_new_tokens {
                break FinishReason::Length;
            }
            batch.clear();
            batch
                .add(token, to_pos(position), &[0], true)
                .map_err(batch_error)?;
            position += 1;
            ctx.decode(batch).map_err(decode_error)?;
            if job.events.is_closed() {
                return Ok(Outcome::Cancelled);
            }
        };

        // Flush text held for an incomplete character or a possible stop sequence.
        let scan = stops.push(&utf8.finish());
        let mut tail = scan.emit;
        let finish_reason = if scan.stopped {
            FinishReason::Stop
        } else {
            tail.push_str(&stops.finish());
            finish_reason
        };
        timings.decode = started.elapsed().saturating_sub(timings.prefill);
        self.finish(job, finish_reason, completion_tokens, timings, Some(tail))
    }

    fn finish(
        &self,
        job: &Job,
        finish_reason: FinishReason,
        completion_tokens: u32,
        timings: EngineTimings,
        tail: Option<String>,
    ) -> Result<Outcome, EngineError> {
        if let Some(tail) = tail.filter(|t| !t.is_empty()) {
            if job.events.send(Ok(GenerationEvent::Delta(tail))).is_err() {
                return Ok(Outcome::Cancelled);
            }
        }
        let usage = Usage {
            prompt_tokens: u32::try_from(job.tokens.len()).unwrap_or(u32::MAX),
            completion_tokens,
        };
        tracing::info!(
            finish_reason = finish_reason.as_str(),
            completion_tokens,
            "finished"
        );
        let _ = job.events.send(Ok(GenerationEvent::Finished {
            finish_reason,
            usage,
            timings: Some(timings),
        }));
        Ok(Outcome::Finished)
    }
}

fn to_pos(position: usize) -> i32 {
    i32::try_from(position).unwrap_or(i32::MAX)
}

/// The llama.cpp sampler chain for one request: penalties, then greedy at temperature 0, or
/// top-k, top-p, temperature and a seeded random draw otherwise.
fn build_sampler(params: &SamplingParams, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            PENALTY_WINDOW,
            1.0,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(
                i32::try_from(params.top_k).unwrap_or(i32::MAX),
            ));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(seed_for(params.seed)));
    }
    LlamaSampler::chain_simple(chain)
}

/// llama.cpp seeds are 32-bit: fold the request's 64-bit seed, or draw a fresh one.
fn seed_for(seed: Option<u64>) -> u32 {
    let seed = seed.unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
    (seed ^ (seed >> 32)) as u32
}
