//! `/v1/models` bodies: the list inferd's server answers, and the ids inferd's gateway reads
//! from an upstream's list.

use serde::{Deserialize, Serialize};

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

/// An upstream's model list, of which only the ids are read.
#[derive(Debug, Deserialize)]
pub struct UpstreamModelList {
    pub data: Vec<UpstreamModel>,
}

/// One model of an upstream's list.
#[derive(Debug, Deserialize)]
pub struct UpstreamModel {
    pub id: String,
}
