//! The engine thread: continuous batching over one llama.cpp context.
//!
//! Up to `parallel` sequences hold a slot (a llama.cpp sequence id) at once. Each step builds
//! one batch: one token for every decoding sequence, then chunks of the prompts still being
//! processed, oldest first, up to `prefill_chunk` prompt tokens (so a long prompt never stalls
//! the others' decoding for more than one chunk); it is decoded once and every sequence whose
//! last token was in it samples its next token. New requests join at the next step when a slot
//! is free, in arrival order.
//!
//! Batch lines ([`crate::Priority::Batch`]) give way to interactive requests: they sit out
//! every step in which an interactive sequence processes its prompt, get prompt tokens only
//! after the interactive sequences, and at most `batch_prefill_chunk` of them a step, so an
//! interactive request that arrives while a batch line's step runs waits for one short step.
//!
//! Each slot has its own share of the KV cache (`ctx_size / parallel` cells, a llama.cpp KV
//! stream per sequence, as llama-server's slots): a request is checked against that share
//! before it is queued, so a running sequence never runs out of room, and a sequence's cells
//! sit at the same places whatever else runs, which keeps greedy output the same as when it
//! runs alone. An idle slot keeps its last sequence's cells as a prompt cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use tokio::sync::mpsc;

use super::sequence::{Phase, Sampled, Sequence};
use super::slots::Slots;
use super::Job;
use crate::hooks::{BatchMember, BatchPhase, BatchRun, EngineLoad, HooksBus};
use crate::EngineError;

/// What the engine thread is given at start-up.
pub(super) struct Settings {
    pub(super) model_id: String,
    pub(super) hooks: HooksBus,
    pub(super) model: Arc<LlamaModel>,
    /// Requests accepted and not yet admitted (shared with the request side).
    pub(super) queued: Arc<AtomicUsize>,
    /// The latest state, for the admin API.
    pub(super) load: Arc<Mutex<EngineLoad>>,
    pub(super) parallel: u32,
    /// `--max-queue`, reported with the engine's load.
    pub(super) queue_limit: u32,
    /// KV cells of each slot.
    pub(super) slot_context: u32,
    pub(super) prefill_chunk: u32,
    /// Most prompt tokens of batch lines in one step.
    pub(super) batch_prefill_chunk: u32,
    /// Longest time a sequence may hold its slot.
    pub(super) generation_timeout: Option<std::time::Duration>,
}

/// One sequence's share of the step being built.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Index into `running`.
    index: usize,
    tokens: usize,
    /// Batch index of the logits to sample from, when the step completes its pending tokens.
    logits: Option<i32>,
    prefill: bool,
}

/// The batch run being reported (see [`BatchRun`]).
struct Run {
    phase: BatchPhase,
    /// Admission numbers of the members, to tell when membership changes.
    orders: Vec<u64>,
    members: Vec<BatchMember>,
    steps: u32,
    tokens: u64,
    started_at: SystemTime,
    started: Instant,
}

/// The engine thread's state.
pub(super) struct Scheduler {
    settings: Settings,
    slots: Slots,
    /// Sequences holding a slot, by slot.
    running: Vec<Sequence>,
    /// A job taken from the queue that is admitted next (the head of the line).
    held: Option<Job>,
    admitted: u64,
    entries: Vec<Entry>,
    /// Per step: tokens each running sequence puts in the batch, and running indices oldest
    /// first (kept to reuse their memory).
    wants: Vec<usize>,
    by_age: Vec<usize>,
    /// Per step: what each running sequence could put in the batch.
    shape: Vec<Want>,
    run: Option<Run>,
    load: EngineLoad,
}

impl Scheduler {
    pub(super) fn new(settings: Settings) -> Self {
        let parallel = usize::try_from(settings.parallel).unwrap_or(1);
        Self {
            slots: Slots::new(parallel),
            running: Vec::with_capacity(parallel),
            held: None,
            admitted: 0,
            entries: Vec::with_capacity(parallel),
            wants: Vec::with_capacity(parallel),
            by_age: Vec::with_capacity(parallel),
            shape: Vec::with_capacity(parallel),
            run: None,
            load: EngineLoad {
                slots: settings.parallel,
                queue_limit: settings.queue_limit,
                ..EngineLoad::default()
            },
            settings,
        }
    }

    /// Creates the context, reports on `ready` whether that worked, then serves jobs
    /// until the queue's sending side is dropped (the model was unloaded or the process is
    /// exiting).
    pub(super) fn run(
        mut self,
        backend: &'static LlamaBackend,
        params: LlamaContextParams,
        mut jobs: mpsc::Receiver<Job>,
        ready: std::sync::mpsc::SyncSender<Result<(), String>>,
    ) {
        let model = Arc::clone(&self.settings.model);
        let mut ctx = match model.new_context(backend, params) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot create llama.cpp context: {e}")));
                return;
            }
        };
        self.load.kv_cells = self.settings.slot_context * self.settings.parallel;
        let step_tokens = usize::try_from(self.settings.prefill_chunk + self.settings.parallel)
            .unwrap_or(usize::MAX);
        let mut batch = LlamaBatch::new(step_tokens, 1);
        if ready.send(Ok(())).is_err() {
            return;
        }
        loop {
            if self.running.is_empty() && self.held.is_none() {
                self.end_run();
                match jobs.blocking_recv() {
                    Some(job) => self.held = Some(job),
                    None => return,
                }
            }
            self.admit(&mut ctx, &mut jobs);
            self.drop_cancelled();
            if !self.running.is_empty() {
                self.step(&mut ctx, &mut batch);
            }
        }
    }

    /// Starts queued jobs while a slot is free, in arrival order.
    fn admit(&mut self, ctx: &mut LlamaContext<'_>, jobs: &mut mpsc::Receiver<Job>) {
        let parallel = usize::try_from(self.settings.parallel).unwrap_or(1);
        let mut changed = false;
        while self.running.len() < parallel {
            let Some(mut job) = self.held.take().or_else(|| jobs.try_recv().ok()) else {
                break;
            };
            if job.events.is_closed() {
                // The client left while waiting in the queue.
                self.dequeued();
                job.observed.cancelled();
                continue;
            }
            let Some(pick) = self.slots.pick(&job.tokens) else {
                self.held = Some(job);
                break;
            };
            // At least the last prompt token is processed again: its logits give the first
            // token.
            let mut reuse = pick.common.min(job.tokens.len() - 1);
            if pick.cached > reuse {
                let cut = ctx.clear_kv_cache_seq(slot_id(pick.slot), Some(to_u32(reuse)), None);
                if !matches!(cut, Ok(true)) {
                    // The cache cannot be cut at that position (a model whose memory only
                    // drops whole sequences): start the slot empty.
                    let _ = ctx.clear_kv_cache_seq(slot_id(pick.slot), None, None);
                    reuse = 0;
                }
            }
            self.slots.take(pick.slot);
            self.dequeued();
            self.admitted += 1;
            let n_vocab = self.settings.model.n_vocab();
            let at = self.running.partition_point(|s| s.slot < pick.slot);
            self.running.insert(
                at,
                Sequence::start(
                    job,
                    (pick.slot, self.admitted),
                    reuse,
                    n_vocab,
                    self.settings.generation_timeout,
                ),
            );
            changed = true;
        }
        if changed {
            self.report_load();
        }
    }

    /// Ends the sequences whose clients went away; their slots keep the cache.
    fn drop_cancelled(&mut self) {
        if !self.running.iter().any(Sequence::cancelled) {
            return;
        }
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].cancelled() {
                let mut sequence = self.running.remove(i);
                sequence.cancel();
                self.release(sequence);
            } else {
                i += 1;
            }
        }
        self.report_load();
    }

    /// Frees a finished sequence's slot; its cells stay as the slot's prompt cache.
    fn release(&mut self, sequence: Sequence) {
        let slot = sequence.slot;
        self.slots.release(slot, sequence.into_cached_tokens());
    }

    /// Builds one batch from the running sequences, decodes it, and samples.
    fn step(&mut self, ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>) {
        batch.clear();
        self.entries.clear();
        self.shape.clear();
        self.shape.extend(self.running.iter().map(|s| Want {
            background: s.background,
            prefill: s.phase == Phase::Prefill,
            pending: s.pending().len(),
            order: s.order,
        }));
        plan_step(
            &self.shape,
            Budget {
                prompt: usize::try_from(self.settings.prefill_chunk).unwrap_or(1),
                batch_prompt: usize::try_from(self.settings.batch_prefill_chunk).unwrap_or(1),
            },
            &mut self.by_age,
            &mut self.wants,
        );
        // Tokens go into the batch in slot order: llama.cpp decodes a run of consecutive
        // sequence ids in one pass over its per-sequence KV streams.
        for (index, sequence) in self.running.iter().enumerate() {
            let want = self.wants[index];
            let prefill = sequence.phase == Phase::Prefill;
            if want == 0 {
                continue;
            }
            let start = sequence.n_past;
            let completes = start + want == sequence.tokens.len();
            for (offset, token) in sequence.pending()[..want].iter().enumerate() {
                let last = offset + 1 == want;
                let _ = batch.add(
                    *token,
                    to_pos(start + offset),
                    &[seq_id(sequence.slot)],
                    last && completes,
                );
            }
            self.entries.push(Entry {
                index,
                tokens: want,
                logits: completes.then(|| batch.n_tokens() - 1),
                prefill,
            });
        }
        if self.entries.is_empty() {
            return;
        }

        let started = Instant::now();
        let started_at = SystemTime::now();
        if let Err(e) = ctx.decode(batch) {
            self.fail_batch(ctx, &EngineError::Inference(e.to_string()));
            return;
        }
        let mut done = false;
        let mut prefill_step = false;
        for entry in &self.entries {
            let sequence = &mut self.running[entry.index];
            sequence.n_past += entry.tokens;
            prefill_step |= entry.prefill;
            if let Some(logits) = entry.logits {
                if let Sampled::Done = sequence.sample(ctx, logits, &self.settings.model) {
                    done = true;
                }
            }
        }
        self.report_step(prefill_step, started, started_at);
        if done {
            self.release_finished();
        }
        self.publish_load();
    }

    /// Removes the sequences that finished in the last step.
    fn release_finished(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].finished() {
                let sequence = self.running.remove(i);
                self.release(sequence);
            } else {
                i += 1;
            }
        }
        self.report_load();
    }

    /// A decode failed: every sequence in the batch gets the error and loses its cells.
    fn fail_batch(&mut self, ctx: &mut LlamaContext<'_>, err: &EngineError) {
        tracing::error!(model = %self.settings.model_id, error = %err, "engine step failed");
        let mut failed: Vec<usize> = self.entries.iter().map(|e| e.index).collect();
        failed.sort_unstable();
        for index in failed.into_iter().rev() {
            let mut sequence = self.running.remove(index);
            sequence.fail(err.clone());
            let _ = ctx.clear_kv_cache_seq(slot_id(sequence.slot), None, None);
            self.slots.release(sequence.slot, Vec::new());
        }
        self.end_run();
        self.report_load();
    }

    /// Reports the step to the batch-run tracker: a prefill step is a run of its own; decode
    /// steps extend the current run while its membership stays the same.
    fn report_step(&mut self, prefill: bool, started: Instant, started_at: SystemTime) {
        if !self.settings.hooks.observes_batch_runs() {
            return;
        }
        let tokens: u64 = self.entries.iter().map(|e| e.tokens as u64).sum();
        if !prefill {
            if let Some(run) = self.run.as_mut() {
                let same = run.phase == BatchPhase::Decode
                    && run.orders.len() == self.entries.len()
                    && run
                        .orders
                        .iter()
                        .zip(&self.entries)
                        .all(|(order, e)| *order == self.running[e.index].order);
                if same {
                    run.steps += 1;
                    run.tokens += tokens;
                    for (member, e) in run.members.iter_mut().zip(&self.entries) {
                        member.tokens += to_u32(e.tokens);
                    }
                    return;
                }
            }
        }
        self.end_run();
        self.run = Some(Run {
            phase: if prefill {
                BatchPhase::Prefill
            } else {
                BatchPhase::Decode
            },
            orders: self
                .entries
                .iter()
                .map(|e| self.running[e.index].order)
                .collect(),
            members: self
                .entries
                .iter()
                .map(|e| BatchMember {
                    generation: self.running[e.index].generation.clone(),
                    tokens: to_u32(e.tokens),
                })
                .collect(),
            steps: 1,
            tokens,
            started_at,
            started,
        });
        if prefill {
            self.end_run();
        }
    }

    /// Reports the current batch run, if any.
    fn end_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        self.settings.hooks.batch_run(&BatchRun {
            model: &self.settings.model_id,
            phase: run.phase,
            members: &run.members,
            steps: run.steps,
            tokens: run.tokens,
            started_at: run.started_at,
            duration: run.started.elapsed(),
        });
    }

    /// A request left the queue (admitted or dropped).
    fn dequeued(&self) {
        self.settings.queued.fetch_sub(1, Ordering::SeqCst);
        self.settings
            .hooks
            .queue_changed(&self.settings.model_id, -1);
    }

    /// Updates the state the admin API reads.
    fn publish_load(&mut self) {
        self.load.running = u32::try_from(self.running.len()).unwrap_or(u32::MAX);
        self.load.kv_cells_running = to_u32(self.running.iter().map(|s| s.n_past).sum::<usize>());
        self.load.kv_cells_cached = to_u32(self.slots.cached_cells());
        self.load.waiting =
            u32::try_from(self.settings.queued.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        *self.settings.load.lock().unwrap_or_else(|e| e.into_inner()) = self.load;
    }

    /// Publishes the state and reports it to observers (membership changed).
    fn report_load(&mut self) {
        self.publish_load();
        self.settings
            .hooks
            .engine_load(&self.settings.model_id, &self.load);
    }
}

/// What one running sequence could put in the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    /// A batch line.
    background: bool,
    /// Still processing its prompt.
    prefill: bool,
    /// Tokens not yet decoded (prompt left, or the one sampled token).
    pending: usize,
    /// Admission order.
    order: u64,
}

/// Prompt tokens one step may take: in all, and of batch lines.
#[derive(Debug, Clone, Copy)]
struct Budget {
    prompt: usize,
    batch_prompt: usize,
}

/// How many tokens each sequence puts in the next step (`wants`, by index of `shape`):
/// every decoding sequence its sampled token; prompt tokens up to the budget, interactive
/// sequences first, then batch lines, oldest first, batch lines at most `batch_prompt`. While
/// an interactive sequence processes its prompt, batch lines sit the step out altogether.
/// `by_age` is scratch space.
fn plan_step(shape: &[Want], budget: Budget, by_age: &mut Vec<usize>, wants: &mut Vec<usize>) {
    let yield_to_prompt = shape.iter().any(|w| !w.background && w.prefill);
    wants.clear();
    wants.extend(shape.iter().map(|w| {
        if w.prefill || (w.background && yield_to_prompt) {
            0
        } else {
            w.pending
        }
    }));
    by_age.clear();
    by_age.extend(0..shape.len());
    by_age.sort_unstable_by_key(|&i| (shape[i].background, shape[i].order));
    let (mut prompt, mut batch_prompt) = (budget.prompt, budget.batch_prompt);
    for &index in by_age.iter() {
        let want = shape[index];
        if !want.prefill || (want.background && yield_to_prompt) {
            continue;
        }
        let mut take = want.pending.min(prompt);
        if want.background {
            take = take.min(batch_prompt);
            batch_prompt -= take;
        }
        wants[index] = take;
        prompt -= take;
    }
}

fn to_pos(position: usize) -> i32 {
    i32::try_from(position).unwrap_or(i32::MAX)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A slot's llama.cpp sequence id.
fn seq_id(slot: usize) -> i32 {
    i32::try_from(slot).unwrap_or(i32::MAX)
}

/// The same, as the KV-cache calls take it.
fn slot_id(slot: usize) -> Option<u32> {
    u32::try_from(slot).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(background: bool, prefill: bool, pending: usize, order: u64) -> Want {
        Want {
            background,
            prefill,
            pending,
            order,
        }
    }

    fn plan(shape: &[Want], prompt: usize, batch_prompt: usize) -> Vec<usize> {
        let (mut by_age, mut wants) = (Vec::new(), Vec::new());
        plan_step(
            shape,
            Budget {
                prompt,
                batch_prompt,
            },
            &mut by_age,
            &mut wants,
        );
        wants
    }

    #[test]
    fn prompt_tokens_go_to_the_oldest_and_decoding_sequences_always_step() {
        let shape = [
            want(false, true, 300, 2),
            want(false, false, 1, 1),
            want(false, true, 100, 1),
        ];
        assert_eq!(plan(&shape, 256, 32), [156, 1, 100]);
    }

    #[test]
    fn batch_lines_sit_out_while_an_interactive_prompt_is_processed() {
        let shape = [
            want(true, false, 1, 1),
            want(true, true, 500, 2),
            want(false, true, 40, 3),
            want(false, false, 1, 4),
        ];
        assert_eq!(plan(&shape, 256, 32), [0, 0, 40, 1]);
    }

    #[test]
    fn batch_prompts_take_at_most_their_chunk_after_interactive_ones() {
        let shape = [
            want(true, true, 500, 1),
            want(true, false, 1, 2),
            want(false, false, 1, 3),
        ];
        assert_eq!(plan(&shape, 256, 32), [32, 1, 1]);
        // Two batch prompts share the batch chunk, oldest first.
        let two = [want(true, true, 20, 1), want(true, true, 20, 2)];
        assert_eq!(plan(&two, 256, 32), [20, 12]);
    }
}
