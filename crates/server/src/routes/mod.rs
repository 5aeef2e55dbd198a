//! Route handlers, kept thin: extract, validate, call the engine, shape the answer.

pub mod batches;
pub mod completions;
pub mod debug;
pub mod debug_ui;
pub mod embeddings;
pub mod files;
pub mod health;
pub mod models;
pub mod models_admin;

use axum::Extension;

use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::AppState;

/// Reports a request refused before generation (the hooks record it) and hands the error back.
fn rejected(state: &AppState, error: ApiError) -> ApiError {
    let error_type = error.code.unwrap_or(error.kind);
    state.hooks.request_rejected(error_type, &error.message);
    error
}

/// The request's access-log facts (a detached set when the access log middleware is absent).
fn facts(access: Option<Extension<AccessFacts>>) -> AccessFacts {
    access.map(|Extension(facts)| facts).unwrap_or_default()
}
