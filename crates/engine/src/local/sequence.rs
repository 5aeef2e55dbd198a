//! One running generation on the engine thread: its tokens, where its KV cache ends, its
//! sampler chain, and the text it has streamed so far.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::Job;
use crate::hooks::{ObservedSequence, SequenceFinished};
use crate::text::{StopMatcher, Utf8Assembler};
use crate::{EngineError, EngineTimings, FinishReason, GenerationEvent, SamplingParams, Usage};

/// Tokens looked back at for frequency/presence penalties (llama.cpp's default window).
const PENALTY_WINDOW: i32 = 64;

/// Where a sequence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its prompt is being processed.
    Prefill,
    /// One new token per step.
    Decode,
}

/// What sampling one token led to.
pub(super) enum Sampled {
    /// The token was streamed; the sequence goes on.
    Continue,
    /// The sequence ended: it sent `Finished`, or its client went away.
    Done,
}

/// A generation holding an engine slot.
pub(super) struct Sequence {
    /// Slot index, also its llama.cpp sequence id.
    pub(super) slot: usize,
    /// Admission order: older sequences come first in each step.
    pub(super) order: u64,
    /// A batch line: it gives way to interactive sequences (see the scheduler).
    pub(super) background: bool,
    /// Prompt, then generated tokens; the last one is not in the KV cache yet while decoding.
    pub(super) tokens: Vec<LlamaToken>,
    prompt_len: usize,
    /// Tokens of `tokens` whose KV is in the cache (positions `0..n_past`).
    pub(super) n_past: usize,
    pub(super) phase: Phase,
    /// Prompt tokens reused from the slot's prompt cache.
    pub(super) cached_tokens: u32,
    pub(super) generation: opentelemetry::trace::SpanContext,
    events: mpsc::UnboundedSender<Result<GenerationEvent, EngineError>>,
    params: SamplingParams,
    max_new_tokens: u32,
    sampler: LlamaSampler,
    utf8: Utf8Assembler,
    stops: StopMatcher,
    completion_tokens: u32,
    /// The observers' views of the request (they end when the sequence leaves its slot).
    observed: ObservedSequence,
    admitted_at: Instant,
    /// When the generation timeout ends the sequence.
    deadline: Option<Instant>,
    queue_time: std::time::Duration,
    first_token_at: Option<Instant>,
}

impl Sequence {
    /// Starts `job` in `slot` with the first `reused` prompt tokens already in the cache; it
    /// may run for `timeout`. Reports the admission.
    pub(super) fn start(
        job: Job,
        (slot, order): (usize, u64),
        reused: usize,
        n_vocab: i32,
        timeout: Option<std::time::Duration>,
    ) -> Self {
        let admitted_at = Instant::now();
        let Job {
            generation,
            mut observed,
            enqueued_at,
            tokens,
            params,
            max_new_tokens,
            background,
            events,
        } = job;
        observed.admitted();
        let sampler = build_sampler(&params, n_vocab);
        let stops = StopMatcher::new(&params.stop);
        Self {
            slot,
            order,
            background,
            prompt_len: tokens.len(),
            tokens,
            n_past: reused,
            phase: Phase::Prefill,
            cached_tokens: u32::try_from(reused).unwrap_or(u32::MAX),
            generation,
            events,
            params,
            max_new_tokens,
            sampler,
            utf8: Utf8Assembler::default(),
            stops,
            completion_tokens: 0,
            observed,
            admitted_at,
            deadline: timeout.map(|t| admitted_at + t),
            queue_time: admitted_at - enqueued_at,
            first_token_at: None,
        }
    }

    /// Tokens still to be decoded before the next sample.
    pub(super) fn pending(&self) -> &[LlamaToken] {
        &self.tokens[self.n_past..]
    }

    /// Whether the sequence ended in its last sample: a running one always has at least its
    /// last sampled token pending.
    pub(super) fn finished(&self) -> bool {
        self.pending().is_empty()
    }

    /// Whether the client went away.
    pub(super) fn cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Samples the next token from the logits at `batch_index` of the last decode, and
    /// streams its text.
    pub(super) fn sample(
        &mut self,
        ctx: &LlamaContext<'_>,
        batch_index: i32,
        model: &LlamaModel,
    ) -> Sampled {
        self.phase = Phase::Decode;
        if self.completion_tokens >= self.max_new_tokens {
            return self.finish(FinishReason::Length, true);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.observed.timed_out();
            return self.finish(FinishReason::Length, true);
        }
        let token = self.sampler.sample(ctx, batch_index);
        if self.first_token_at.is_none() {
            self.first_token_at = Some(Instant::now());
            self.observed.first_token();
        }
        let vocab = model.vocab();
        if vocab.is_eog(token) && !self.params.ignore_eos {
            return self.finish(FinishReason::Stop, true);
        }
        self.completion_tokens += 1;
        let text = self.utf8.push(&vocab.token_to_piece(token, false, None));
        let scan = self.stops.push(&text);
        if !scan.emit.is_empty() && self.send(scan.emit).is_err() {
            return self.cancel();
        }
        if scan.stopped {
            return self.finish(FinishReason::Stop, false);
        }
        if self.completion_tokens >= self.max_new_tokens {
            return self.finish(FinishReason::Length, true);
        }
        self.tokens.push(token);
        Sampled::Continue
    }

    /// Ends the sequence: with `flush`, sends the text held for an incomplete character or a
    /// possible stop sequence (not when a stop sequence just cut it), then `Finished`.
    fn finish(&mut self, reason: FinishReason, flush: bool) -> Sampled {
        let mut reason = reason;
        if flush {
            let scan = self.stops.push(&self.utf8.finish());
            let mut tail = scan.emit;
            if scan.stopped {
                reason = FinishReason::Stop;
            } else {
                tail.push_str(&self.stops.finish());
            }
            if !tail.is_empty() && self.send(tail).is_err() {
                return self.cancel();
            }
        }
        let now = Instant::now();
        let first = self.first_token_at.unwrap_or(now);
        let timings = EngineTimings {
            queue: self.queue_time,
            prefill: first - self.admitted_at,
            decode: now - first,
        };
        let usage = Usage {
            prompt_tokens: u32::try_from(self.prompt_len).unwrap_or(u32::MAX),
            completion_tokens: self.completion_tokens,
            cached_tokens: self.cached_tokens,
        };
        self.observed.finished(&SequenceFinished {
            finish_reason: reason,
            usage,
        });
        let _ = self.events.send(Ok(GenerationEvent::Finished {
            finish_reason: reason,
            usage,
            timings: Some(timings),
        }));
        Sampled::Done
    }

    /// The client went away: the observers are told.
    pub(super) fn cancel(&mut self) -> Sampled {
        self.observed.cancelled();
        Sampled::Done
    }

    /// The engine failed this sequence: the client gets the error.
    pub(super) fn fail(&mut self, err: EngineError) {
        self.observed.failed(err.kind(), &err.to_string());
        let _ = self.events.send(Err(err));
    }

    fn send(&self, text: String) -> Result<(), ()> {
        self.events
            .send(Ok(GenerationEvent::Delta(text)))
            .map_err(|_| ())
    }

    /// Tokens whose KV stays in the slot's cache after the sequence ends.
    pub(super) fn into_cached_tokens(mut self) -> Vec<LlamaToken> {
        self.tokens.truncate(self.n_past);
        std::mem::take(&mut self.tokens)
    }
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
