//! The inference side of inferd: the [`Backend`] trait every model server implements, the
//! request/response types that cross it, the in-process llama.cpp engine ([`local`]) and the
//! [`ModelRegistry`] that maps model ids to loaded backends.
//!
//! The HTTP layer depends on this crate, never the other way round.

pub mod artifacts;
pub mod backend;
pub mod catalog;
pub mod error;
pub mod hooks;
pub mod local;
pub mod registry;
pub mod remote;
pub mod request;
pub mod text;

pub use backend::{Backend, GenerationStream, ModelInfo};
pub use error::EngineError;
pub use registry::{
    ArtifactResolver, Lease, ListedModel, LookupError, ModelRegistry, ModelSpec, ModelState,
    ModelStatus, ResolvedArtifact, UnloadError,
};
pub use request::{
    ChatMessage, ChatRole, EngineTimings, FinishReason, GenerationEvent, GenerationRequest,
    PassThrough, Priority, Prompt, SamplingParams, Usage,
};
