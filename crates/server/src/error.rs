//! API errors: every failure a client can see, rendered as OpenAI-style error JSON
//! `{"error":{"message","type","param","code"}}` with the matching HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use inferd_engine::{EngineError, LookupError};
use inferd_openai::{ErrorBody, ErrorDetail};

/// The code of a refused feature inferd does not implement.
const UNSUPPORTED: &str = "unsupported_parameter";

/// A client-facing error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's error `type`: `invalid_request_error`, `server_error`, …
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A stable machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
        }
    }

    /// 400 for a valid option inferd does not implement.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(Some(param.to_owned()), message).with_code(UNSUPPORTED)
    }

    /// Whether this is a refusal of a feature inferd does not implement (which an upstream
    /// may serve).
    pub fn is_unsupported(&self) -> bool {
        self.code == Some(UNSUPPORTED)
    }

    /// 404 for something that is not there; `code` says what.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: Some(code),
        }
    }

    /// 401: an operator endpoint was called without the right bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_admin_token"),
        }
    }

    /// 403: an operator endpoint was called from another machine while no token is set.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            kind: "permission_error",
            param: None,
            code: Some("loopback_only"),
        }
    }

    /// 409: the request conflicts with the current state (e.g. unloading a busy model).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: Some(code),
        }
    }

    /// 404 for a path that does not exist.
    pub fn route_not_found(path: &str) -> Self {
        Self::not_found(
            "not_found",
            format!("no route for {path}; see /v1/models, /v1/chat/completions, /v1/completions"),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "method not allowed on this path".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("method_not_allowed"),
        }
    }

    /// 413 for a body over the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body is larger than the limit of {limit} bytes"),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// 408 for a request body that did not arrive within the body timeout.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_timeout"),
        }
    }

    /// 503 for a request the server could not finish before its shutdown deadline.
    pub fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down; retry on another instance".into(),
            kind: "server_error",
            param: None,
            code: Some("shutting_down"),
        }
    }

    /// 500 for a bug or an engine failure; the message still says what happened.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: Some("internal_error"),
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The error body, also sent as an SSE event when a stream fails.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        }
    }

    /// Maps an engine error, naming `prompt_param` (`messages` or `prompt`) where the prompt is at fault.
    pub fn from_engine(err: EngineError, prompt_param: &str) -> Self {
        let message = err.to_string();
        let code = err.kind();
        match err {
            EngineError::PromptTooLong { .. } => {
                Self::invalid(Some(prompt_param.to_owned()), message).with_code(code)
            }
            EngineError::MaxTokensTooLarge { .. } => {
                Self::invalid(Some("max_tokens".to_owned()), message).with_code(code)
            }
            EngineError::InvalidRequest(_) => {
                Self::invalid(Some(prompt_param.to_owned()), message).with_code(code)
            }
            EngineError::Overloaded { .. } | EngineError::NotReady { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
                kind: "server_error",
                param: None,
                code: Some(code),
            },
            EngineError::Load { .. } | EngineError::Inference(_) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message,
                kind: "server_error",
                param: None,
                code: Some(code),
            },
            EngineError::UpstreamUnavailable { .. } | EngineError::UpstreamBusy { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
                kind: "server_error",
                param: None,
                code: Some(code),
            },
            EngineError::UpstreamFailed { .. } => Self {
                status: StatusCode::BAD_GATEWAY,
                message,
                kind: "server_error",
                param: None,
                code: Some(code),
            },
            EngineError::UpstreamTimeout { .. } => Self {
                status: StatusCode::GATEWAY_TIMEOUT,
                message,
                kind: "server_error",
                param: None,
                code: Some(code),
            },
            EngineError::UpstreamStatus {
                upstream,
                status,
                message,
                code: upstream_code,
                param,
            } => Self::from_upstream_status(&upstream, status, message, upstream_code, param),
        }
    }

    /// An upstream's error answer: client errors (4xx) and "try later" (429, 503) pass through
    /// with the upstream's own message, code and param; other failures become 502.
    fn from_upstream_status(
        upstream: &str,
        status: u16,
        message: String,
        code: Option<String>,
        param: Option<String>,
    ) -> Self {
        let passed = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || *s == StatusCode::SERVICE_UNAVAILABLE);
        match passed {
            Some(status) => Self {
                status,
                message,
                kind: if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                    "invalid_request_error"
                } else {
                    "server_error"
                },
                param,
                code: Some(known_code(code.as_deref())),
            },
            None => Self {
                status: StatusCode::BAD_GATEWAY,
                message: format!("upstream `{upstream}` answered {status}: {message}"),
                kind: "server_error",
                param: None,
                code: Some("upstream_error"),
            },
        }
    }

    /// Maps a registry lookup failure (unknown or unready model).
    pub fn from_lookup(err: LookupError) -> Self {
        match err {
            LookupError::NotFound { model, available } => Self {
                status: StatusCode::NOT_FOUND,
                message: format!(
                    "the model `{model}` does not exist; available models: {}",
                    available.join(", ")
                ),
                kind: "invalid_request_error",
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
            LookupError::Unavailable(err) => Self::from_engine(err, "model"),
        }
    }
}

/// An upstream's error code, kept when it is one of the codes OpenAI-compatible servers share
/// (codes are static strings here); any other becomes `upstream_error`.
fn known_code(code: Option<&str>) -> &'static str {
    const KNOWN: [&str; 10] = [
        "model_not_found",
        "context_length_exceeded",
        "unsupported_parameter",
        "invalid_request",
        "invalid_api_key",
        "rate_limit_exceeded",
        "overloaded",
        "model_not_ready",
        "upstream_unavailable",
        "request_too_large",
    ];
    code.and_then(|c| KNOWN.iter().find(|k| **k == c).copied())
        .unwrap_or("upstream_error")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
