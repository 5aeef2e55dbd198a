//! `/v1/models` response bodies.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: String,
    /// Extension: the context window in tokens (absent for an upstream's model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
}
