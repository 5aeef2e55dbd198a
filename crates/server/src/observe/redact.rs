//! The built-in redactor for captured content: every match of any of the configured regular
//! expressions is replaced by `[REDACTED]` before a message is recorded on a span.

use inferd_engine::hooks::Redactor;
use regex::RegexSet;

/// What a match is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Masks every match of its patterns.
#[derive(Debug)]
pub struct RegexRedactor {
    set: RegexSet,
    patterns: Vec<regex::Regex>,
}

impl RegexRedactor {
    /// Compiles `patterns`; the error names the pattern that does not compile.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for p in patterns {
            compiled.push(
                regex::Regex::new(p)
                    .map_err(|e| format!("invalid redaction pattern `{p}`: {e}"))?,
            );
        }
        let set = RegexSet::new(patterns).map_err(|e| e.to_string())?;
        Ok(Self {
            set,
            patterns: compiled,
        })
    }
}

impl Redactor for RegexRedactor {
    fn redact(&self, text: &str) -> String {
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for i in hits.iter() {
            out = self.patterns[i].replace_all(&out, REDACTED).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_match_of_every_pattern_is_masked() {
        let r = RegexRedactor::new(&[
            r"[\w.+-]+@[\w-]+\.[\w.]+".to_owned(),
            r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b".to_owned(),
        ])
        .expect("patterns");
        assert_eq!(
            r.redact("mail a@b.com or c.d@e.org, card 4111 1111 1111 1111."),
            "mail [REDACTED] or [REDACTED], card [REDACTED]."
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let err = RegexRedactor::new(&["(unclosed".to_owned()]).expect_err("bad");
        assert!(err.contains("(unclosed"), "{err}");
    }
}
