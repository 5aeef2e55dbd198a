//! Property tests of reading an upstream's error body and finish reason: any body at all gives
//! a message that fits a log line, the error bodies servers send give their message, code and
//! param, and every finish reason maps to one of inferd's.

#![allow(clippy::unwrap_used)]

use inferd_testkit::{config, re};
use proptest::prelude::*;

use super::*;

/// `len` bytes drawn from a seed: cheaper than a strategy per byte for long inputs.
fn random_bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    (len, any::<u64>()).prop_map(|(len, mut seed)| {
        (0..len)
            .map(|_| {
                // xorshift64
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect()
    })
}

/// An error body as servers send them, and the message, code and param to read from it.
fn error_body() -> impl Strategy<Value = (Vec<u8>, (String, Option<String>, Option<String>))> {
    let text = re("\\PC{0,12}");
    prop_oneof![
        (
            prop::option::of(text.clone()),
            prop::option::of(prop_oneof![
                text.clone().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
            ]),
            prop::option::of(text.clone()),
        )
            .prop_map(|(message, code, param)| {
                let mut error = serde_json::Map::new();
                if let Some(m) = &message {
                    error.insert("message".into(), m.clone().into());
                }
                if let Some(c) = &code {
                    error.insert("code".into(), c.clone());
                }
                if let Some(p) = &param {
                    error.insert("param".into(), p.clone().into());
                }
                error.insert("type".into(), "invalid_request_error".into());
                let body = serde_json::json!({ "error": error })
                    .to_string()
                    .into_bytes();
                let code = code.map(|c| match c {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                });
                (
                    body,
                    (
                        message.unwrap_or_else(|| "(no message)".into()),
                        code,
                        param,
                    ),
                )
            }),
        text.clone().prop_map(|m| (
            serde_json::json!({ "error": m }).to_string().into_bytes(),
            (m, None, None)
        )),
        text.prop_map(|m| (
            serde_json::json!({ "message": m, "status": 500 })
                .to_string()
                .into_bytes(),
            (m, None, None)
        )),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn error_bodies_give_their_message_code_and_param(case in error_body()) {
        let (body, expected) = case;
        prop_assert_eq!(error_from_body(&body), expected);
    }

    #[test]
    fn any_error_body_gives_a_message_that_fits_a_log_line(
        body in prop_oneof![
            re("\\PC{0,64}").prop_map(String::into_bytes),
            random_bytes(0..=2048),
            // Long text of multi-byte characters: the cut at 512 bytes falls inside one.
            (500..530usize, prop::sample::select(vec!["a", "é", "€", "😀"]))
                .prop_map(|(n, c)| c.repeat(n).into_bytes()),
        ],
    ) {
        let (message, _, _) = error_from_body(&body);
        let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        prop_assert!(!message.is_empty() || json);
        if !json {
            // Not JSON: the body's text, trimmed, cut to 512 bytes on a character boundary.
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let kept = message.strip_suffix('…').filter(|_| text.len() > 512).unwrap_or(&message);
            prop_assert!(kept.len() <= 512, "{} bytes", kept.len());
            if !text.is_empty() {
                prop_assert!(text.starts_with(kept), "{:?} is not a prefix of the body", kept);
            }
        }
    }

    #[test]
    fn finish_reasons_map_to_inferd_reasons(
        reason in prop_oneof![
            prop::sample::select(vec![
                "stop", "length", "content_filter", "tool_calls", "function_call", "eos", "",
            ])
                .prop_map(str::to_owned),
            re("\\PC{0,12}"),
        ],
    ) {
        let expected = match reason.as_str() {
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        prop_assert_eq!(finish_reason(&reason), expected);
    }
}
