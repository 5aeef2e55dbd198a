//! The `console` mode's span exporter: one JSON object per finished span on stdout, in the same
//! shape as the /debug/traces API.

use std::io::Write;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::store::span_record;

/// Prints spans as JSON lines to stdout.
#[derive(Debug, Default)]
pub struct ConsoleSpanExporter;

impl SpanExporter for ConsoleSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = std::io::stdout().lock();
        for span in &batch {
            let line = serde_json::to_string(&span_record(span))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        }
        Ok(())
    }
}
