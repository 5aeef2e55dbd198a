//! Property tests of the Prometheus text renderer's escaping. Attribute keys and values (some
//! from clients: routes, model names, baggage, resource attributes) and metric descriptions
//! become label names, label values and HELP text; whatever they hold, the rendered scrape
//! must parse back by the text exposition format's rules (version 0.0.4) to what was recorded,
//! or one odd value breaks the whole `/metrics` page for the scraper.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use inferd_testkit::{config, re};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use proptest::prelude::*;

use super::*;

/// Text with what needs escaping (backslashes, quotes, newlines) and what does not (other
/// control characters, unicode, braces, commas), including text that already looks escaped.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => re("[\\\\\"\na-z\r\t{},=]{0,24}"),
        2 => re("(?s).{0,24}"),
        1 => re("(\\\\n|\\\\\"|\\\\\\\\|\\\\)*"),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// Attribute keys: OpenTelemetry-style names, names with `:` or digits first, and anything.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => re("[a-z][a-z0-9_]{0,6}(\\.[a-z][a-z0-9_]{0,6}){0,3}"),
        1 => re("[0-9:_.-][a-zA-Z0-9:_.-]{0,8}"),
        2 => re("(?s).{0,12}"),
    ]
    .boxed()
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label value by the text format's rules: `\\`, `\"` and `\n` are the only escapes, and
/// a raw `"` or newline cannot appear.
fn unescape_label_value(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                other => return Err(format!("invalid escape \\{other:?} in {text:?}")),
            },
            '"' => return Err(format!("unescaped quote in {text:?}")),
            '\n' => return Err(format!("raw newline in {text:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// HELP text by the text format's rules: `\\` and `\n` are the only escapes; `strict: false`
/// also takes `\"`, as newer Prometheus parsers do.
fn unescape_help(text: &str, strict: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if !strict => out.push('"'),
                other => return Err(format!("invalid escape \\{other:?} in {text:?}")),
            },
            '\n' => return Err(format!("raw newline in {text:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `{name="value",...}` (or nothing) by the text format's rules.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("no braces around {text:?}"))?;
    let mut rest = inner;
    let mut labels = Vec::new();
    loop {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("no `=\"` in {rest:?}"))?;
        // The value ends at the first quote that is not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated value in {after:?}"))?;
        labels.push((name.to_owned(), unescape_label_value(&after[..end])?));
        rest = &after[end + 1..];
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None if rest.is_empty() => return Ok(labels),
            None => return Err(format!("unexpected {rest:?} after a value")),
        }
    }
}

/// The labels `labels()` must render: sanitized label names (no colons), the last value of a name winning, and
/// the extra label over any attribute of its name.
fn expected_labels(
    attrs: &[(String, String)],
    extra: Option<(&str, String)>,
) -> Vec<(String, String)> {
    let mut map: BTreeMap<String, String> = attrs
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    if let Some((k, v)) = extra {
        map.insert(k.to_owned(), v);
    }
    map.into_iter().collect()
}

/// A scrape of one counter with `description`, one data point with `attrs`, added `n`.
fn render_counter(description: &str, attrs: &[(String, String)], n: u64) -> String {
    let (metrics, reader) = PrometheusMetrics::new();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let counter = provider
        .meter("proptest")
        .u64_counter("proptest.counter")
        .with_description(description.to_owned())
        .build();
    let kvs: Vec<KeyValue> = attrs
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    counter.add(n, &kvs);
    metrics.render().unwrap_or_default()
}

const COUNTER: &str = "proptest_counter_total";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn escaped_label_values_unescape_to_the_original(value in text()) {
        let escaped = escape(&value);
        prop_assert!(!escaped.contains('\n'));
        prop_assert_eq!(unescape_label_value(&escaped), Ok(value));
    }

    #[test]
    fn sanitized_names_match_the_metric_name_grammar(name in key()) {
        let clean = sanitize(&name);
        prop_assert!(is_metric_name(&clean), "{:?} -> {:?}", name, clean);
        prop_assert!(!clean.contains("__"), "{:?} -> {:?}", name, clean);
        prop_assert_eq!(sanitize(&clean), clean.clone(), "not idempotent");
    }

    #[test]
    fn valid_names_without_double_underscores_are_kept(
        name in re("([a-zA-Z:]|_[a-zA-Z0-9:])([a-zA-Z0-9:]|_[a-zA-Z0-9:]){0,20}_?"),
    ) {
        prop_assert_eq!(sanitize(&name), name);
    }

    #[test]
    fn rendered_labels_parse_back_to_the_attributes(
        attrs in prop::collection::vec((key(), text()), 0..6),
        le in prop::option::of(any::<f64>()),
    ) {
        let kvs: Vec<KeyValue> = attrs
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let extra = le.map(|le| ("le", number(le)));
        let rendered = labels(kvs.iter(), extra.clone());
        let parsed = parse_labels(&rendered).map_err(TestCaseError::fail)?;
        for (name, _) in &parsed {
            prop_assert!(is_metric_name(name), "label name {:?} in {:?}", name, rendered);
        }
        prop_assert_eq!(&parsed, &expected_labels(&attrs, extra), "rendered {:?}", rendered);
        if let Some(le) = le {
            let text = parsed
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let back: f64 = text
                .parse()
                .map_err(|e| TestCaseError::fail(format!("le {text:?}: {e}")))?;
            let same = back == le || (back.is_nan() && le.is_nan());
            prop_assert!(same, "le {} rendered {:?}", le, text);
        }
    }

    #[test]
    fn rendered_label_names_match_the_label_name_grammar(
        attrs in prop::collection::vec((key(), text()), 1..4),
    ) {
        let kvs: Vec<KeyValue> = attrs
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let rendered = labels(kvs.iter(), None);
        let parsed = parse_labels(&rendered).map_err(TestCaseError::fail)?;
        for (name, _) in &parsed {
            prop_assert!(is_label_name(name), "label name {:?} in {:?}", name, rendered);
        }
    }

    #[test]
    fn a_rendered_scrape_gives_back_the_description_and_label_values(
        description in text(),
        attrs in prop::collection::vec((key(), text()), 0..4),
        n in any::<u32>(),
    ) {
        // Attributes whose names collide after sanitizing would leave the winner to the SDK's
        // (unstable) attribute sort; keep the first of each.
        let mut seen = std::collections::BTreeSet::new();
        let attrs: Vec<(String, String)> =
            attrs.into_iter().filter(|(k, _)| seen.insert(label_name(k))).collect();
        let scrape = render_counter(&description, &attrs, u64::from(n));
        let help = scrape
            .split('\n')
            .find_map(|l| l.strip_prefix(&format!("# HELP {COUNTER} ")))
            .ok_or_else(|| TestCaseError::fail(format!("no HELP line in {scrape:?}")))?;
        prop_assert_eq!(unescape_help(help, false), Ok(description));
        let sample = scrape
            .split('\n')
            .find(|l| l.starts_with(COUNTER))
            .ok_or_else(|| TestCaseError::fail(format!("no sample in {scrape:?}")))?;
        let (series, value) = sample
            .rsplit_once(' ')
            .ok_or_else(|| TestCaseError::fail(format!("no value in {sample:?}")))?;
        prop_assert_eq!(value, n.to_string());
        let parsed = parse_labels(&series[COUNTER.len()..]).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed, expected_labels(&attrs, None), "sample {:?}", sample);
    }

    #[test]
    fn help_text_uses_only_the_escapes_the_text_format_defines(description in text()) {
        let scrape = render_counter(&description, &[], 1);
        let help = scrape
            .split('\n')
            .find_map(|l| l.strip_prefix(&format!("# HELP {COUNTER} ")))
            .ok_or_else(|| TestCaseError::fail(format!("no HELP line in {scrape:?}")))?;
        prop_assert_eq!(unescape_help(help, true), Ok(description));
    }
}
