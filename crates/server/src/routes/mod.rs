//! Route handlers, kept thin: extract, validate, call the engine, shape the answer.

pub mod completions;
pub mod debug;
pub mod embeddings;
pub mod health;
pub mod models;
pub mod models_admin;
