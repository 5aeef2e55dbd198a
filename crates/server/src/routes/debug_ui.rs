//! GET /debug: the trace viewer, one self-contained HTML page (inline CSS and JavaScript, no
//! external asset) built into the binary. It reads /debug/traces, /debug/traces/{id},
//! /admin/models and /metrics from its own origin; its Content-Security-Policy allows exactly
//! its own inline script and style (by hash) and same-origin requests, nothing else.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The page.
const PAGE: &str = include_str!("../../assets/trace-viewer.html");

/// GET /debug and /debug/: the viewer page, never cached (it changes with the binary).
pub async fn page() -> Response {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        HeaderValue::from_str(&content_security_policy(PAGE))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_SECURITY_POLICY, policy.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// The policy for `page`: its `<script>` and `<style>` elements by SHA-256 (so an injected
/// inline script would not run), fetches to the page's own origin, nothing from elsewhere,
/// no framing, no form posts.
fn content_security_policy(page: &str) -> String {
    let sources = |tag: &str| -> String {
        let hashes: Vec<String> = element_bodies(page, tag)
            .map(|body| format!("'sha256-{}'", base64(&Sha256::digest(body.as_bytes()))))
            .collect();
        if hashes.is_empty() {
            "'none'".to_owned()
        } else {
            hashes.join(" ")
        }
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sources("script"),
        sources("style")
    )
}

/// The text inside each `<tag>…</tag>` element of `page` (the page writes them without
/// attributes, as the hash must cover exactly what the browser sees between the tags).
fn element_bodies<'a>(page: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = page;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let body = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(body)
    })
}

/// Standard base64 with padding (RFC 4648), as CSP hash sources are written.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_follows_rfc_4648() {
        // RFC 4648, section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_own_script_and_style() {
        let page = "<html><style>p{}</style><script>run()</script><script>more()</script>";
        let policy = content_security_policy(page);
        let hash = |text: &str| format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())));
        assert!(
            policy.contains(&format!("script-src {} {};", hash("run()"), hash("more()"))),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("style-src {};", hash("p{}"))),
            "{policy}"
        );
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn the_page_is_self_contained_with_one_script_and_one_style() {
        assert_eq!(element_bodies(PAGE, "script").count(), 1);
        assert_eq!(element_bodies(PAGE, "style").count(), 1);
        // The one link: an empty icon, so the browser does not ask for /favicon.ico.
        let icon = "<link rel=\"icon\" href=\"data:,\">";
        assert_eq!(PAGE.matches(icon).count(), 1);
        let page = PAGE.replace(icon, "");
        // No other element may carry code or load anything: the policy would block it.
        for forbidden in [
            "<script ",
            "<style ",
            " src=",
            "<link",
            "@import",
            "url(",
            "http://",
            "https://",
            " onclick=",
            " style=",
        ] {
            assert!(!page.contains(forbidden), "the page contains `{forbidden}`");
        }
    }
}
