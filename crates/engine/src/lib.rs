//! The inference side of inferd: the [`Backend`] trait every model server implements, the
//! request/response types that cross it, the in-process llama.cpp engine ([`local`]), the
//! [`ModelRegistry`] that maps model ids to loaded backends (asking [`Upstreams`] for the
//! models it does not serve) and the hooks bus observers listen on.
//!
//! The HTTP layer and the gateway (`inferd-gateway`, which implements [`Upstreams`]) depend on
//! this crate, never the other way round; it speaks no HTTP.

pub mod backend;
pub mod catalog;
pub mod error;
pub mod generation;
pub mod hooks;
pub mod local;
pub mod registry;
pub mod request;
pub mod text;

pub use backend::{Backend, GenerationStream, ModelInfo, Upstreams};
pub use error::EngineError;
pub use registry::{
    ArtifactResolver, Lease, ListedModel, LookupError, ModelRegistry, ModelSpec, ModelState,
    ModelStatus, ResolvedArtifact, Route, UnloadError,
};
pub use request::{
    ChatMessage, ChatRole, EngineTimings, FinishReason, GenerationEvent, GenerationRequest,
    PassThrough, Priority, Prompt, SamplingParams, Usage,
};
