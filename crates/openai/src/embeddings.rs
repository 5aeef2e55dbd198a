//! `/v1/embeddings` requests: inferd reads only the model and the input; the body goes to the
//! model's upstream as sent.

use serde::Deserialize;
use serde_json::Value;

/// An embeddings request as clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    /// A string, an array of strings, or token arrays.
    #[serde(default)]
    pub input: Value,
}
