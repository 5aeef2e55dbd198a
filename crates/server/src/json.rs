//! A JSON body extractor whose failures are OpenAI-style errors: 413 over the size limit (from
//! the declared length, before the body is read, when there is one), 408
//! when the body takes longer than the body timeout, 400
//! naming the offending field for malformed JSON or wrong types.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The request body parsed as `T`, the bytes it was parsed from, and the paths of the fields
/// `T` has no place for (e.g. `min_p`, `messages.0.name`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T, pub Bytes, pub Vec<String>);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before any of the body is read, so a
        // client announcing gigabytes is not waited for.
        let limit = state.config.max_body_bytes;
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::too_large(limit));
        }
        // A deadline for the whole body: a client trickling bytes or gone silent mid-body does
        // not hold the connection (and, at shutdown, the process) for longer.
        let deadline = state.config.connections.body_timeout;
        let bytes = tokio::time::timeout(deadline, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::body_timeout(deadline))?
            .map_err(|rejection: BytesRejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(state.config.max_body_bytes)
                } else {
                    ApiError::invalid(None, format!("cannot read request body: {rejection}"))
                }
            })?;
        parse_noting_unknown(&bytes).map(|(value, unknown)| JsonBody(value, bytes, unknown))
    }
}

/// Parses JSON, turning serde's error into a 400 that names the field path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_noting_unknown(bytes).map(|(value, _)| value)
}

/// [`parse`], also returning the paths of the fields `T` ignored.
pub fn parse_noting_unknown<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, Vec<String>), ApiError> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::invalid(
            None,
            "request body is empty: send a JSON object",
        ));
    };
    // serde would also read a struct from an array of its fields in order.
    if *first != b'{' {
        return Err(ApiError::invalid(
            None,
            "request body must be a JSON object",
        ));
    }
    // The common case, a valid body, is parsed without tracking paths; only a body that fails
    // is parsed again with serde_path_to_error, to say where it went wrong.
    let mut unknown = Vec::new();
    let parsed = {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        T::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
            .and_then(|value| de.end().map(|()| value))
    };
    match parsed {
        Ok(value) => Ok((value, unknown)),
        Err(first) => Err(explain::<T>(bytes).unwrap_or_else(|| {
            ApiError::invalid(None, format!("request body is not valid JSON: {first}"))
        })),
    }
}

/// Why `bytes` is not a valid `T`, naming the path of the offending value; `None` when a `T`
/// parses (the fault then lies after it, e.g. trailing characters, and the first error says so).
fn explain<T: DeserializeOwned>(bytes: &[u8]) -> Option<ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = serde_path_to_error::deserialize::<_, T>(&mut de).err()?;
    let path = err.path().to_string();
    let inner = err.into_inner();
    Some(if inner.is_syntax() || inner.is_eof() {
        ApiError::invalid(None, format!("request body is not valid JSON: {inner}"))
    } else if path == "." {
        ApiError::invalid(None, format!("invalid request body: {inner}"))
    } else {
        ApiError::invalid(
            Some(path.clone()),
            format!("invalid value for `{path}`: {inner}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Req {
        model: String,
        n: Option<u32>,
        inner: Option<Vec<Inner>>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        role: String,
    }

    #[test]
    fn wrong_type_names_nested_field() {
        let err = parse::<Req>(br#"{"model":"m","inner":[{"role":5}]}"#).expect_err("bad");
        assert_eq!(err.param.as_deref(), Some("inner[0].role"));
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn missing_field_is_reported() {
        let err = parse::<Req>(br#"{"n":1}"#).expect_err("bad");
        assert!(
            err.message.contains("missing field `model`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn fields_without_a_place_are_noted_with_their_path() {
        let (_, unknown) = parse_noting_unknown::<Req>(
            br#"{"model":"m","min_p":0.1,"inner":[{"role":"user","name":"ann"}]}"#,
        )
        .expect("valid");
        // `?` marks the Option around `inner`.
        assert_eq!(unknown, vec!["min_p", "inner.?.0.name"]);
        let (_, none) = parse_noting_unknown::<Req>(br#"{"model":"m","n":1}"#).expect("valid");
        assert!(none.is_empty());
    }

    #[test]
    fn syntax_error_and_empty_body_are_400() {
        assert!(parse::<Req>(b"{not json")
            .expect_err("bad")
            .message
            .contains("not valid JSON"));
        assert!(parse::<Req>(b"  ")
            .expect_err("bad")
            .message
            .contains("empty"));
        let trailing = parse::<Req>(br#"{"model":"m"} trailing"#).expect_err("bad");
        assert!(
            trailing.message.contains("not valid JSON"),
            "{}",
            trailing.message
        );
        assert_eq!(trailing.param, None);
    }

    #[test]
    fn a_valid_body_parses_whole_with_nested_values() {
        let (req, unknown) =
            parse_noting_unknown::<Req>(br#"{"model":"m","n":2,"inner":[{"role":"user"}]}"#)
                .expect("valid");
        assert_eq!((req.model.as_str(), req.n), ("m", Some(2)));
        assert_eq!(req.inner.expect("inner")[0].role, "user");
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
