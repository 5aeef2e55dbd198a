//! The in-process engine: a GGUF model run by llama.cpp (through the `llama-cpp-2` crate).
//!
//! A llama.cpp context cannot move between threads, so each loaded model gets one dedicated
//! engine thread that owns its context and takes jobs from a bounded queue. Request handlers
//! never compute on the async workers: they tokenize on the blocking pool, enqueue, and read
//! the generated text from a channel. The engine thread batches: up to `parallel` sequences
//! share each llama.cpp decode step (see [`scheduler`]).

mod scheduler;
mod sequence;
mod slots;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::backend::{Backend, GenerationStream, ModelInfo};
use crate::hooks::{EngineLoad, EngineStarted, HooksBus, ObservedSequence, SequenceQueued};
use crate::{EngineError, GenerationRequest, Prompt};

/// Sequences decoded together when none is configured.
pub const DEFAULT_PARALLEL: u32 = 4;

/// Prompt tokens processed per engine step when none is configured.
pub const DEFAULT_PREFILL_CHUNK: u32 = 256;

/// Prompt tokens of batch lines processed per engine step when none is configured.
pub const DEFAULT_BATCH_PREFILL_CHUNK: u32 = 32;

/// Requests that may wait per model for a free slot when none is configured.
pub const DEFAULT_MAX_QUEUE: usize = 64;

/// Longest generation when none is configured.
pub const DEFAULT_GENERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// How a local model is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEngineConfig {
    /// Compute threads for llama.cpp (prompt and generation).
    pub threads: usize,
    /// KV cache size in tokens, split evenly among the `parallel` slots; `None` uses the
    /// model's training context, capped at 8192. One request's prompt plus output must fit in
    /// a slot's share.
    pub context_length: Option<u32>,
    /// Requests allowed to wait for a free sequence slot; more are refused as overloaded.
    pub max_queue: usize,
    /// Sequences decoded together in each engine step (slots).
    pub parallel: u32,
    /// Most prompt tokens one engine step processes (chunked prefill): a long prompt is
    /// processed over several steps, and the running sequences decode a token in each.
    pub prefill_chunk: u32,
    /// Most prompt tokens of batch lines ([`crate::Priority::Batch`]) one engine step
    /// processes; batch lines also sit out the steps in which an interactive request
    /// processes its prompt. Bounds how long an interactive request can wait on a batch step.
    pub batch_prefill_chunk: u32,
    /// Longest time a generation may hold a slot; it then ends with finish reason `length`.
    pub generation_timeout: Option<std::time::Duration>,
    /// Most tokens a generation that asks for no limit may produce (besides the context).
    pub max_tokens: Option<u32>,
    /// Tokenize control-token text inside chat messages as control tokens (llama.cpp's own
    /// behaviour). Off, message text is always tokenized as text and only the chat template
    /// puts control tokens.
    pub special_tokens_in_content: bool,
}

impl Default for LocalEngineConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            context_length: None,
            max_queue: DEFAULT_MAX_QUEUE,
            parallel: DEFAULT_PARALLEL,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
            batch_prefill_chunk: DEFAULT_BATCH_PREFILL_CHUNK,
            generation_timeout: Some(DEFAULT_GENERATION_TIMEOUT),
            max_tokens: None,
            special_tokens_in_content: false,
        }
    }
}

/// llama.cpp's process-wide backend; it may be initialised once per process.
fn llama_backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| EngineError::Inference(format!("llama.cpp backend: {reason}")))
}

/// One unit of work for the engine thread.
#[derive(Debug)]
struct Job {
    /// The generation span's context, which batch runs link to.
    generation: opentelemetry::trace::SpanContext,
    /// The observers' views of the request, told of its admission, tokens and end.
    observed: ObservedSequence,
    enqueued_at: std::time::Instant,
    tokens: Vec<LlamaToken>,
    params: crate::SamplingParams,
    /// Tokens the job may generate (already capped by the context window).
    max_new_tokens: u32,
    /// A batch line, which gives way to interactive requests.
    background: bool,
    events: mpsc::UnboundedSender<Result<crate::GenerationEvent, EngineError>>,
}

/// Turns prompts into tokens with the model's own chat template and tokenizer. Shared with the
/// blocking pool, where tokenization runs.
struct Prompter {
    id: String,
    model: Arc<LlamaModel>,
    template: Option<LlamaChatTemplate>,
    /// Parse control-token text inside messages as control tokens.
    special_tokens_in_content: bool,
}

/// A GGUF model loaded in this process, served by its own engine thread.
pub struct LocalEngine {
    id: String,
    prompter: Arc<Prompter>,
    context_length: u32,
    /// Most tokens of a generation that asks for no limit.
    max_tokens: Option<u32>,
    max_queue: usize,
    queued: Arc<AtomicUsize>,
    jobs: mpsc::Sender<Job>,
    hooks: HooksBus,
    /// The engine thread's latest state, for the admin API.
    load: Arc<std::sync::Mutex<EngineLoad>>,
}

impl LocalEngine {
    /// Loads the model file and starts its engine thread. Blocking: call it off the async workers.
    /// Returns the engine and what it was started with (for the observers).
    pub fn load(
        id: &str,
        path: &Path,
        config: &LocalEngineConfig,
        hooks: HooksBus,
    ) -> Result<(Self, EngineStarted), EngineError> {
        let load_error = |reason: String| EngineError::Load {
            model: id.to_owned(),
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(load_error("no such file".into()));
        }
        let backend = llama_backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| load_error(format!("not a loadable GGUF model ({e})")))?;
        let model = Arc::new(model);
        let total_context = config
            .context_length
            .unwrap_or_else(|| model.n_ctx_train().min(8192));
        let template = model.chat_template(None).ok();
        let threads = i32::try_from(config.threads.max(1)).unwrap_or(i32::MAX);
        let parallel = config.parallel.max(1);
        let prefill_chunk = config.prefill_chunk.max(1);
        // Each slot gets an equal share of the context, in a KV stream of its own.
        let context_length = total_context / parallel;
        if context_length < 16 {
            return Err(load_error(format!(
                "a context of {total_context} tokens shared by {parallel} parallel sequences \
                 leaves {context_length} tokens to each; raise ctx_size or lower parallel"
            )));
        }
        // One step holds a prompt chunk plus one token for each decoding sequence.
        let step_tokens = prefill_chunk + parallel;
        let context_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(context_length * parallel))
            .with_n_batch(step_tokens)
            .with_n_ubatch(step_tokens)
            .with_n_seq_max(parallel)
            .with_kv_unified(false)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);

        let (jobs_tx, jobs_rx) = mpsc::channel(config.max_queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let queue_limit = u32::try_from(config.max_queue.max(1)).unwrap_or(u32::MAX);
        let load = Arc::new(std::sync::Mutex::new(EngineLoad {
            slots: parallel,
            queue_limit,
            ..EngineLoad::default()
        }));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let scheduler = scheduler::Scheduler::new(scheduler::Settings {
            model_id: id.to_owned(),
            hooks: hooks.clone(),
            model: Arc::clone(&model),
            queued: Arc::clone(&queued),
            load: Arc::clone(&load),
            parallel,
            queue_limit,
            slot_context: context_length,
            prefill_chunk,
            batch_prefill_chunk: config.batch_prefill_chunk.clamp(1, prefill_chunk),
            generation_timeout: config.generation_timeout,
        });
        std::thread::Builder::new()
            .name(format!("engine-{id}"))
            .spawn(move || scheduler.run(backend, context_params, jobs_rx, ready_tx))
            .map_err(|e| load_error(format!("cannot start engine thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| load_error("engine thread exited during start-up".into()))?
            .map_err(load_error)?;
        let started = EngineStarted {
            model_id: id.to_owned(),
            path: path.display().to_string(),
            context_length,
            threads: u32::try_from(threads).unwrap_or(u32::MAX),
            parallel,
            prefill_chunk,
            has_chat_template: template.is_some(),
        };
        let engine = Self {
            id: id.to_owned(),
            prompter: Arc::new(Prompter {
                id: id.to_owned(),
                model,
                template,
                special_tokens_in_content: config.special_tokens_in_content,
            }),
            context_length,
            max_tokens: config.max_tokens,
            max_queue: config.max_queue.max(1),
            queued,
            jobs: jobs_tx,
            hooks,
            load,
        };
        Ok((engine, started))
    }

    /// Checks the request against the context window and returns how many tokens it may generate.
    fn completion_budget(
        &self,
        prompt_tokens: u32,
        max_tokens: Option<u32>,
    ) -> Result<u32, EngineError> {
        let context_length = self.context_length;
        if prompt_tokens >= context_length {
            return Err(EngineError::PromptTooLong {
                prompt_tokens,
                context_length,
            });
        }
        let available = context_length - prompt_tokens;
        match max_tokens {
            None => Ok(self.max_tokens.map_or(available, |cap| cap.min(available))),
            Some(max_tokens) if max_tokens <= available => Ok(max_tokens),
            Some(max_tokens) => Err(EngineError::MaxTokensTooLarge {
                prompt_tokens,
                max_tokens,
                requested_total: prompt_tokens.saturating_add(max_tokens),
                context_length,
                available,
            }),
        }
    }
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("id", &self.id)
            .field("context_length", &self.context_length)
            .field("max_queue", &self.max_queue)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Prompter {
    /// Renders and tokenizes the prompt with the model's own template and tokenizer.
    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
        let vocab = self.model.vocab();
        let tokens = match prompt {
            Prompt::Text(text) => vocab.tokenize(text.as_bytes(), true, true),
            Prompt::Chat(messages) if self.special_tokens_in_content => {
                let text = self.render(messages.iter().map(|m| (m, m.content.as_str())))?;
                vocab.tokenize(text.as_bytes(), true, true)
            }
            Prompt::Chat(messages) => self.tokenize_chat(messages)?,
        };
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest(
                "the prompt is empty: it must contain at least one token".into(),
            ));
        }
        Ok(tokens)
    }

    /// Tokenizes a chat so that control tokens come only from the template: the template is
    /// rendered with a marker in place of each message's text, its own text is tokenized with
    /// control tokens, and each message's text is tokenized as plain text where its marker is.
    fn tokenize_chat(
        &self,
        messages: &[crate::ChatMessage],
    ) -> Result<Vec<LlamaToken>, EngineError> {
        let markers: Vec<String> = (0..messages.len())
            .map(|i| format!("{MARKER_OPEN}{i}{MARKER_CLOSE}"))
            .collect();
        let rendered = self.render(messages.iter().zip(&markers).map(|(m, k)| (m, k.as_str())))?;
        let Some(pieces) = split_at_markers(&rendered, &markers) else {
            // The template moved, repeated or dropped a message's text: tokenize the whole
            // rendering as llama.cpp does.
            warn_template_rearranges(&self.id);
            let text = self.render(messages.iter().map(|m| (m, m.content.as_str())))?;
            return Ok(self.model.vocab().tokenize(text.as_bytes(), true, true));
        };
        let vocab = self.model.vocab();
        let mut tokens = Vec::with_capacity(rendered.len() / 3);
        for (index, piece) in pieces.iter().enumerate() {
            vocab.tokenize_into(piece.as_bytes(), &mut tokens, index == 0, true);
            if let Some(message) = messages.get(index) {
                vocab.tokenize_into(message.content.as_bytes(), &mut tokens, false, false);
            }
        }
        Ok(tokens)
    }

    /// The chat template applied to `messages`, each with the given text.
    fn render<'a>(
        &self,
        messages: impl Iterator<Item = (&'a crate::ChatMessage, &'a str)>,
    ) -> Result<String, EngineError> {
        let template = self.template.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "model `{}` has no chat template; use /v1/completions with a plain prompt",
                self.id
            ))
        })?;
        let messages = messages
            .map(|(m, text)| LlamaChatMessage::new(m.role.as_str().into(), text.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                EngineError::InvalidRequest(
                    "message content must not contain NUL characters".into(),
                )
            })?;
        self.model
            .apply_chat_template(template, &messages, true)
            .map_err(|e| EngineError::InvalidRequest(format!("cannot apply chat template: {e}")))
    }
}

/// Around a message's index in the rendering that locates its text: private-use characters,
/// which no template writes.
const MARKER_OPEN: char = '\u{F8F0}';
const MARKER_CLOSE: char = '\u{F8F1}';

/// The template's text between the markers (one more piece than markers), or `None` unless
/// each marker appears exactly once, in order.
fn split_at_markers<'a>(rendered: &'a str, markers: &[String]) -> Option<Vec<&'a str>> {
    if rendered.matches(MARKER_OPEN).count() != markers.len() {
        return None;
    }
    let mut pieces = Vec::with_capacity(markers.len() + 1);
    let mut rest = rendered;
    for marker in markers {
        let at = rest.find(marker.as_str())?;
        pieces.push(&rest[..at]);
        rest = &rest[at + marker.len()..];
    }
    pieces.push(rest);
    Some(pieces)
}

/// Says once per model that its template defeats the marker split.
fn warn_template_rearranges(model: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|m| m == model) {
        warned.push(model.to_owned());
        tracing::warn!(
            model,
            "the chat template moves or repeats message text: control-token text in messages \
             is tokenized as control tokens for this model"
        );
    }
}

/// `owned_by` and `gen_ai.provider.name` of local models.
static INFERD: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("inferd"));

#[async_trait]
impl Backend for LocalEngine {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            context_length: self.context_length,
            owned_by: Arc::clone(&INFERD),
            provider: Arc::clone(&INFERD),
            server: None,
        }
    }

    /// The slots and KV cache as the engine thread last published them, with the queue as it
    /// is now.
    fn engine_load(&self) -> Option<EngineLoad> {
        let mut load = *self.load.lock().unwrap_or_else(|e| e.into_inner());
        load.waiting = u32::try_from(self.queued.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        Some(load)
    }

    async fn generate(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        if request.pass_through.is_some() {
            return Err(EngineError::InvalidRequest(
                "this request uses features only a remote upstream can serve".into(),
            ));
        }
        let GenerationRequest {
            prompt,
            params,
            priority,
            ..
        } = request;
        let prompter = Arc::clone(&self.prompter);
        let tokens = tokio::task::spawn_blocking(move || prompter.tokenize(&prompt))
            .await
            .map_err(|e| EngineError::Inference(format!("tokenizer task failed: {e}")))??;
        let prompt_tokens = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        let max_new_tokens = self.completion_budget(prompt_tokens, params.max_tokens)?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        // The generation's context (its span's when telemetry is on) goes to the observers,
        // whose spans about the request are its children on whichever thread they end.
        let parent = opentelemetry::Context::current();
        let generation = {
            use opentelemetry::trace::TraceContextExt;
            parent.span().span_context().clone()
        };
        let observed = self.hooks.sequence_queued(&SequenceQueued {
            model: &self.id,
            parent: &parent,
            position: self.queued.load(Ordering::SeqCst),
        });
        let job = Job {
            generation,
            observed,
            enqueued_at: std::time::Instant::now(),
            tokens,
            params,
            max_new_tokens,
            background: priority == crate::Priority::Batch,
            events: events_tx,
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.hooks.queue_changed(&self.id, 1);
                Ok(GenerationStream::new(prompt_tokens, events_rx))
            }
            Err(err) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match err {
                    mpsc::error::TrySendError::Full(_) => EngineError::Overloaded {
                        model: self.id.clone(),
                        queued: self.queued.load(Ordering::SeqCst),
                        limit: self.max_queue,
                    },
                    mpsc::error::TrySendError::Closed(_) => {
                        EngineError::Inference("the engine thread has stopped".into())
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{MARKER_OPEN}{i}{MARKER_CLOSE}"))
            .collect()
    }

    #[test]
    fn rendering_splits_into_template_text_around_each_message() {
        let m = markers(2);
        let rendered = format!("<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", m[0], m[1]);
        let pieces = split_at_markers(&rendered, &m).expect("split");
        assert_eq!(
            pieces,
            vec![
                "<|im_start|>system\n",
                "<|im_end|>\n<|im_start|>user\n",
                "<|im_end|>\n<|im_start|>assistant\n"
            ]
        );
    }

    #[test]
    fn a_template_that_drops_repeats_or_reorders_text_is_not_split() {
        let m = markers(2);
        assert!(
            split_at_markers(&format!("a{}b", m[0]), &m).is_none(),
            "dropped"
        );
        assert!(
            split_at_markers(&format!("{}{}{}", m[0], m[1], m[1]), &m).is_none(),
            "repeated"
        );
        assert!(
            split_at_markers(&format!("{}{}", m[1], m[0]), &m).is_none(),
            "reordered"
        );
    }
}
