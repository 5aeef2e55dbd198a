//! What the job store keeps. [`FileObject`] and [`Batch`] serialize as OpenAI's File and
//! Batch objects; the owner and trace context kept beside them never reach the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An uploaded or generated file (OpenAI's File object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    pub purpose: String,
    pub status: String,
}

/// Where a batch is (OpenAI's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Cancelling,
    Cancelled,
    Expired,
}

impl BatchStatus {
    /// Whether the batch has ended (nothing of it will run any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Expired
        )
    }
}

/// Lines of a batch by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// OpenAI's Batch object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub errors: Option<Value>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: u64,
    pub in_progress_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: RequestCounts,
    pub metadata: Option<Value>,
}

/// The W3C trace context of the request that created a batch, carried to its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFields {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub baggage: Option<String>,
}

impl TraceFields {
    /// From a propagator's string map (keys `traceparent`, `tracestate`, `baggage`).
    pub fn from_map(map: &std::collections::HashMap<String, String>) -> Self {
        Self {
            traceparent: map.get("traceparent").cloned(),
            tracestate: map.get("tracestate").cloned(),
            baggage: map.get("baggage").cloned(),
        }
    }

    /// As a string map for a propagator to extract from.
    pub fn to_map(&self) -> std::collections::HashMap<String, String> {
        [
            ("traceparent", &self.traceparent),
            ("tracestate", &self.tracestate),
            ("baggage", &self.baggage),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect()
    }
}

/// Where one queued line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    Pending,
    Running,
    Done,
}

/// One queue entry: a line of a batch's input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub batch_id: String,
    pub index: u32,
    pub custom_id: String,
    /// The endpoint the line is sent to (the batch's).
    pub url: String,
    pub body: Value,
    pub state: LineState,
    pub trace: TraceFields,
    /// Times a worker took the line (more than 1: it was taken up again after a worker
    /// stopped without finishing it).
    #[serde(default)]
    pub attempts: u32,
}

/// A new id of one line's entry in a batch's output or error file (OpenAI's `batch_req_…`).
pub fn batch_request_id() -> String {
    format!("batch_req_{:032x}", fastrand::u128(..))
}

impl LineResult {
    /// The error-file line of a line its batch's completion window ended before it ran
    /// (OpenAI's `batch_expired`).
    pub fn expired(line: &Line) -> Self {
        let json = serde_json::json!({
            "id": batch_request_id(),
            "custom_id": line.custom_id,
            "response": null,
            "error": {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window expired.",
            },
        });
        Self {
            custom_id: line.custom_id.clone(),
            failed: true,
            json: json.to_string(),
        }
    }
}

/// The outcome of one line: a line of the output file, or of the error file when `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResult {
    pub custom_id: String,
    pub failed: bool,
    /// The JSON line, without its newline.
    pub json: String,
}

/// How much batch work the queue holds, across every process sharing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Lines no worker has taken yet (with Redis, lines of a cancelled batch count until a
    /// worker reads and drops them).
    pub waiting: u64,
    /// Lines taken by a worker and not finished.
    pub taken: u64,
    /// When the oldest line not yet finished was queued (ms since the Unix epoch).
    pub oldest_queued_ms: Option<u64>,
}
