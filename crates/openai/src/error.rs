//! Error bodies both ways: the one inferd writes (`{"error":{"message","type","param","code"}}`,
//! also sent as an SSE event when a stream fails) and the shapes upstreams answer with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error body, or the SSE event of a stream that failed.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// The `error` object of an error body.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    /// OpenAI's error `type`: `invalid_request_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// OpenAI's error object, as upstreams send it in an error body or an error event.
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub param: Option<String>,
}

impl UpstreamError {
    /// The code as a string (some servers send numbers).
    pub fn code_string(&self) -> Option<String> {
        match &self.code {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// An upstream's error body, in the shapes servers use.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UpstreamErrorBody {
    /// `{"error": {...}}` (OpenAI, vLLM, inferd).
    Object { error: UpstreamError },
    /// `{"error": "text"}` (TGI, Ollama).
    Text { error: String },
    /// `{"message": "text"}`.
    Message { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_written_with_every_field() {
        let body = ErrorBody {
            error: ErrorDetail {
                message: "no",
                kind: "invalid_request_error",
                param: Some("n"),
                code: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"error":{"message":"no","type":"invalid_request_error","param":"n","code":null}}"#
        );
    }

    #[test]
    fn error_bodies_of_several_servers_are_read() {
        let read = |body: &str| serde_json::from_str::<UpstreamErrorBody>(body).expect(body);
        match read(r#"{"error":{"message":"m","code":400,"param":"model"}}"#) {
            UpstreamErrorBody::Object { error } => {
                assert_eq!(error.message.as_deref(), Some("m"));
                assert_eq!(error.code_string().as_deref(), Some("400"));
                assert_eq!(error.param.as_deref(), Some("model"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(r#"{"error":"bad input"}"#),
            UpstreamErrorBody::Text { error } if error == "bad input"
        ));
        assert!(matches!(
            read(r#"{"message":"down","status":500}"#),
            UpstreamErrorBody::Message { message } if message == "down"
        ));
    }
}
