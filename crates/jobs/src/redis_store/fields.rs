//! Records as Redis holds them: a stream entry as a [`Line`], a file hash as a
//! [`FileObject`], a batch hash (its record as created, then the fields that change) as a
//! [`Batch`].

use std::collections::HashMap;

use redis::streams::StreamId;
use serde_json::Value;

use crate::records::{Batch, BatchStatus, FileObject, Line, LineState, TraceFields};
use crate::store::StoredBatch;
use crate::JobsError;

/// The line of a stream entry a worker took for the `attempts`-th time.
pub(super) fn line_from_entry(entry: &StreamId, attempts: u32) -> Option<Line> {
    let text = |name: &str| entry.get::<String>(name);
    let body: Value = serde_json::from_str(&text("body")?).ok()?;
    Some(Line {
        batch_id: text("batch_id")?,
        index: text("index")?.parse().ok()?,
        custom_id: text("custom_id")?,
        url: text("url")?,
        body,
        state: LineState::Running,
        trace: TraceFields {
            traceparent: text("traceparent"),
            tracestate: text("tracestate"),
            baggage: text("baggage"),
        },
        attempts,
    })
}

pub(super) fn file_from_fields(
    fields: Vec<Option<String>>,
) -> Option<(FileObject, Option<String>)> {
    let mut it = fields.into_iter();
    let mut next = || it.next().flatten();
    let id = next()?;
    let bytes = next()?.parse().ok()?;
    let created_at = next()?.parse().ok()?;
    let file = FileObject {
        id,
        object: "file".into(),
        bytes,
        created_at,
        filename: next()?,
        purpose: next()?,
        status: next()?,
    };
    Some((file, next()))
}

pub(super) fn batch_from_fields(
    fields: &HashMap<String, String>,
) -> Result<Option<(Batch, Option<String>)>, JobsError> {
    let Some(record) = fields.get("record") else {
        return Ok(None);
    };
    let stored: StoredBatch = serde_json::from_str(record)?;
    let mut batch = stored.batch;
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
    if let Some(status) = fields.get("status") {
        batch.status = serde_json::from_value::<BatchStatus>(Value::String(status.clone()))?;
    }
    batch.request_counts.completed = number("completed").unwrap_or(0);
    batch.request_counts.failed = number("failed").unwrap_or(0);
    batch.output_file_id = fields.get("output_file_id").cloned();
    batch.error_file_id = fields.get("error_file_id").cloned();
    batch.finalizing_at = number("finalizing_at");
    batch.completed_at = number("completed_at");
    batch.cancelling_at = number("cancelling_at");
    batch.cancelled_at = number("cancelled_at");
    batch.expired_at = number("expired_at");
    Ok(Some((batch, stored.owner)))
}
