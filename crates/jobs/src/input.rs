//! Checks a batch input file: JSONL, one `{custom_id, method, url, body}` request a line.

use std::collections::HashSet;

use serde_json::Value;

/// The endpoints a batch line may call.
pub const BATCH_ENDPOINTS: [&str; 2] = ["/v1/chat/completions", "/v1/completions"];

/// One checked request of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputLine {
    pub custom_id: String,
    pub url: String,
    pub body: Value,
}

/// Why an input file was refused; `line` counts from 1 (0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(*.line, message))]
pub struct InputError {
    pub line: usize,
    pub message: String,
}

fn describe(line: usize, message: &str) -> String {
    if line == 0 {
        message.to_owned()
    } else {
        format!("line {line}: {message}")
    }
}

fn at(line: usize, message: impl Into<String>) -> InputError {
    InputError {
        line,
        message: message.into(),
    }
}

/// Parses and checks every line of `bytes`; blank lines are skipped. Custom ids must be
/// unique; `url` must be one of [`BATCH_ENDPOINTS`].
pub fn parse(bytes: &[u8]) -> Result<Vec<InputLine>, InputError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| at(0, format!("the file is not UTF-8: {e}")))?;
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(raw).map_err(|e| at(number, format!("not valid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(at(number, "must be a JSON object"));
        };
        let custom_id = match object.remove("custom_id") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => return Err(at(number, "`custom_id` must be a non-empty string")),
        };
        if !seen.insert(custom_id.clone()) {
            return Err(at(
                number,
                format!("duplicate custom_id `{custom_id}`: each line needs its own"),
            ));
        }
        if object.get("method").and_then(Value::as_str) != Some("POST") {
            return Err(at(number, "`method` must be \"POST\""));
        }
        let url = match object.remove("url") {
            Some(Value::String(url)) if BATCH_ENDPOINTS.contains(&url.as_str()) => url,
            _ => {
                return Err(at(
                    number,
                    format!("`url` must be one of {}", BATCH_ENDPOINTS.join(", ")),
                ))
            }
        };
        let body = match object.remove("body") {
            Some(body @ Value::Object(_)) => body,
            _ => return Err(at(number, "`body` must be a JSON object")),
        };
        lines.push(InputLine {
            custom_id,
            url,
            body,
        });
    }
    if lines.is_empty() {
        return Err(at(0, "the file has no requests"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#;

    #[test]
    fn valid_lines_parse_and_blank_lines_are_skipped() {
        let text = format!("{GOOD}\n\n{}\n", GOOD.replace("\"a\"", "\"b\""));
        let lines = parse(text.as_bytes()).expect("valid");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].custom_id, "b");
    }

    #[test]
    fn bad_json_is_refused_with_its_line_number() {
        let text = format!("{GOOD}\n{}\n{{nope\n", GOOD.replace("\"a\"", "\"b\""));
        let err = parse(text.as_bytes()).expect_err("bad");
        assert_eq!(err.line, 3);
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }

    #[test]
    fn duplicate_custom_id_is_refused_at_the_second_line() {
        let text = format!("{GOOD}\n{GOOD}\n");
        let err = parse(text.as_bytes()).expect_err("dup");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("duplicate"));
    }

    #[test]
    fn unknown_url_and_empty_file_are_refused() {
        let text = GOOD.replace("/v1/chat/completions", "/v1/embeddings");
        assert_eq!(parse(text.as_bytes()).expect_err("url").line, 1);
        assert_eq!(parse(b"\n\n").expect_err("empty").line, 0);
    }
}
