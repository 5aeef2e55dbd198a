//! Access to operator endpoints (/debug/*, /admin/*): with an admin token configured, every caller must
//! present it as `Authorization: Bearer TOKEN`; without one, only loopback clients are served,
//! so a server bound to 0.0.0.0 does not show its traces to the network by accident.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Middleware guarding operator routes.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let bearer = crate::auth::bearer(request.headers());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    match check(state.config.admin_token.as_deref(), bearer, peer) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware of `/metrics`: with a metrics token configured, every caller (a Prometheus
/// scraper with `authorization: {credentials: TOKEN}`) must present it; without one it is open.
pub async fn require_metrics_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = state.config.metrics_token.as_deref() {
        let bearer = crate::auth::bearer(request.headers());
        let error = match bearer {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => None,
            Some(_) => Some("the metrics token is wrong"),
            None => Some("/metrics needs the metrics token: send `Authorization: Bearer TOKEN`"),
        };
        if let Some(message) = error {
            return ApiError::unauthorized(message)
                .with_code("invalid_metrics_token")
                .into_response();
        }
    }
    next.run(request).await
}

/// The decision, apart from axum: `token` is the configured one, `bearer` what the caller sent.
fn check(
    token: Option<&str>,
    bearer: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<(), ApiError> {
    match token {
        Some(token) => match bearer {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("the admin token is wrong")),
            None => Err(ApiError::unauthorized(
                "this operator endpoint needs the admin token: send `Authorization: Bearer TOKEN`",
            )),
        },
        None if peer.is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        None => Err(ApiError::forbidden(
            "operator endpoints answer loopback clients only; set --admin-token (INFERD_ADMIN_TOKEN) to reach them from elsewhere",
        )),
    }
}

/// Compares secrets without an early exit that would leak how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn without_a_token_only_loopback_clients_pass() {
        assert!(check(None, None, addr("127.0.0.1:5000")).is_ok());
        assert!(check(None, None, addr("[::1]:5000")).is_ok());
        let err = check(None, None, addr("10.0.0.7:5000")).expect_err("remote refused");
        assert_eq!(err.status.as_u16(), 403);
        assert!(check(None, Some("anything"), addr("10.0.0.7:5000")).is_err());
        assert!(
            check(None, None, None).is_err(),
            "unknown peer is not loopback"
        );
    }

    #[test]
    fn with_a_token_everyone_must_present_it() {
        let token = Some("s3cret-s3cret-s3cret");
        assert!(check(token, Some("s3cret-s3cret-s3cret"), addr("10.0.0.7:1")).is_ok());
        let missing = check(token, None, addr("127.0.0.1:1")).expect_err("missing");
        assert_eq!(missing.status.as_u16(), 401);
        let wrong =
            check(token, Some("s3cret-s3cret-s3creX"), addr("127.0.0.1:1")).expect_err("wrong");
        assert_eq!(wrong.status.as_u16(), 401);
        assert!(check(token, Some("s3cret"), addr("127.0.0.1:1")).is_err());
    }
}
