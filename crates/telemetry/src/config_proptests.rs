//! Property tests of the telemetry configuration parsers: the `k=v,...` lists with
//! percent-encoding (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS), whole-millisecond
//! timeouts, positive counts, the sampler ratio, endpoint schemes with
//! OTEL_EXPORTER_OTLP_INSECURE and the mTLS file pairs. Whatever an operator puts in the
//! environment, start-up either gets exactly the value written or an `InvalidSetting` error
//! naming a variable that was set, with its value; it never panics and never wraps or rounds.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use inferd_testkit::{config, re};
use proptest::prelude::*;

use super::*;

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Percent-encodes all but unreserved characters, in upper or lower case hex.
fn encode(text: &str, upper: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Optional whitespace, as operators write around list members.
fn ows() -> BoxedStrategy<String> {
    prop::sample::select(vec!["", " ", "  ", "\t"])
        .prop_map(str::to_owned)
        .boxed()
}

/// Values for any variable: numbers of every shape, booleans, URLs, lists, filters, unicode.
fn any_value() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|x| x.to_string()),
        1 => re("[+-]?[0-9]{0,25}(\\.[0-9]{0,4})?(e[+-]?[0-9]{1,3})?( ?ms| ?s)?"),
        1 => re("(?i)(true|false|yes|on|1|0|nan|inf|-inf|infinity)"),
        1 => re("(https?|grpc|ftp)://[a-z0-9.:@\\[\\]/ %?#-]{0,20}"),
        1 => re(concat!(
            "(off|local|otlp|console|grpc|http/protobuf|http/json|none|always_on|always_off|",
            "traceidratio|parentbased_traceidratio|parentbased_always_on|tracecontext|baggage|",
            "b3|json|pretty|auto)"
        )),
        1 => re("[a-z%=, ]{0,16}"),
        1 => re("[a-z_,=\\[\\]{}/.*:]{0,16}"),
        1 => re("\\PC{0,12}"),
        1 => re("[ \t]{0,3}"),
    ]
    .boxed()
}

const VARIABLES: &[&str] = &[
    "INFERD_TELEMETRY",
    "INFERD_FORCE_TRACE_HEADER",
    "INFERD_TRACE_STORE_TRACES",
    "INFERD_TRACE_STORE_SPANS",
    "INFERD_BAGGAGE_SPAN_ATTRIBUTES",
    "INFERD_LOG_FORMAT",
    "INFERD_LOG",
    "INFERD_DEPLOYMENT_ENVIRONMENT",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_PROPAGATORS",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
];

/// Variables read as whole milliseconds.
const MILLIS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
];

fn millis_setting(config: &TelemetryConfig, variable: &str) -> Duration {
    match variable {
        "OTEL_EXPORTER_OTLP_TIMEOUT" | "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" => {
            config.otlp_traces.timeout
        }
        "OTEL_BSP_SCHEDULE_DELAY" => config.batch.schedule_delay,
        "OTEL_BSP_EXPORT_TIMEOUT" => config.batch.export_timeout,
        _ => config.metric_export_interval,
    }
}

/// What may follow a `%` that is not two hex digits: nothing, one character, or two of which
/// one is not a hex digit (a sign, a space, a letter past `f`, a multi-byte character).
fn bad_escape() -> BoxedStrategy<String> {
    let any = prop::sample::select(vec![
        '0', '9', 'a', 'f', 'A', 'F', '+', '-', ' ', 'g', '%', 'é',
    ]);
    let non_hex = prop::sample::select(vec!['+', '-', ' ', 'g', 'G', '%', 'é', '\0']);
    prop_oneof![
        Just(String::new()),
        any.clone().prop_map(String::from),
        (non_hex.clone(), any.clone()).prop_map(|(a, b)| format!("{a}{b}")),
        (any, non_hex).prop_map(|(a, b)| format!("{a}{b}")),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn key_value_lists_round_trip_through_percent_encoding(
        pairs in prop::collection::vec(
            (re("\\PC{1,8}|[=,% ]{1,3}"), re("\\PC{0,8}|[=,% ;]{0,3}")),
            0..6,
        ),
        upper in any::<bool>(),
        spaces in prop::collection::vec(ows(), 12),
    ) {
        let text = pairs
            .iter()
            .zip(spaces.chunks(2))
            .map(|((k, v), s)| format!("{}{}={}{}", s[0], encode(k, upper), encode(v, upper), s[1]))
            .collect::<Vec<_>>()
            .join(",");
        prop_assert_eq!(parse_key_value_list(&text), Some(pairs.clone()), "{:?}", text);
        // The same through the environment.
        let config = TelemetryConfig::from_env(&env(&[("OTEL_RESOURCE_ATTRIBUTES", text.clone())]));
        match config {
            Ok(config) if text.trim().is_empty() => {
                prop_assert!(config.resource_attributes.is_empty());
            }
            Ok(config) => prop_assert_eq!(config.resource_attributes, pairs),
            Err(e) => prop_assert!(false, "{:?} rejected: {}", text, e),
        }
    }

    #[test]
    fn key_value_members_without_a_key_or_an_equals_sign_are_rejected(
        good in prop::collection::vec(re("[a-z]{1,4}=[a-z]{0,4}"), 0..3),
        bad in prop_oneof![re("[a-z %0-9]{1,8}"), re("=[a-z]{0,4}"), re(" *= *[a-z]{0,4}")],
        at in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!bad.contains('=') || bad.trim().starts_with('='));
        prop_assume!(!bad.trim().is_empty());
        let mut members = good;
        members.insert(at.index(members.len() + 1), bad.clone());
        let text = members.join(",");
        prop_assert_eq!(parse_key_value_list(&text), None, "{:?} accepted", text);
    }

    #[test]
    fn percent_decoding_rejects_a_percent_not_followed_by_two_hex_digits(
        before in re("[a-z]{0,4}"),
        escape in bad_escape(),
        after in re("[a-z]{0,4}"),
    ) {
        // `after` could complete a one-character escape; keep it from doing so.
        let after = if escape.chars().count() < 2 { "" } else { after.as_str() };
        let text = format!("{before}%{escape}{after}");
        prop_assert_eq!(percent_decode(&text), None, "{:?}", text);
        prop_assert_eq!(parse_key_value_list(&format!("k={text}")), None);
    }

    #[test]
    fn from_env_never_panics_and_errors_name_a_variable_that_was_set(
        settings in prop::collection::btree_map(prop::sample::select(VARIABLES), any_value(), 0..6),
    ) {
        let env: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        match TelemetryConfig::from_env(&env) {
            Ok(config) => {
                prop_assert!(config.batch.max_export_batch_size <= config.batch.max_queue_size);
                prop_assert!((0.0..=1.0).contains(&config.sampler.ratio));
            }
            Err(Error::InvalidSetting { variable, value, .. }) => {
                prop_assert_eq!(env.get(&variable), Some(&value), "{} was not set so", variable);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn whole_milliseconds_parse_exactly_and_anything_else_is_an_error(
        variable in prop::sample::select(MILLIS),
        n in any::<u64>(),
        (before, after) in (ows(), ows()),
        junk in prop_oneof![
            any::<u64>().prop_map(|n| format!("{}", u128::from(n) + u128::from(u64::MAX) + 1)),
            any::<i64>().prop_filter("negative", |n| *n < 0).prop_map(|n| n.to_string()),
            any::<u32>().prop_map(|n| format!("{n}.5")),
            any::<u32>().prop_map(|n| format!("{n}ms")),
            any::<u32>().prop_map(|n| format!("{n}s")),
            any::<u32>().prop_map(|n| format!("{n}e3")),
            re("\\PC{1,6}").prop_filter("not a number", |s| s.trim().parse::<u64>().is_err()),
        ],
    ) {
        let ok = TelemetryConfig::from_env(&env(&[(variable, format!("{before}{n}{after}"))]));
        match ok {
            Ok(config) => {
                prop_assert_eq!(millis_setting(&config, variable), Duration::from_millis(n));
            }
            Err(e) => prop_assert!(false, "{} = {} rejected: {}", variable, n, e),
        }
        match TelemetryConfig::from_env(&env(&[(variable, junk.clone())])) {
            Err(Error::InvalidSetting { variable: v, value, .. }) => {
                prop_assert_eq!(v, variable);
                prop_assert_eq!(value, junk);
            }
            Ok(_) if junk.trim().is_empty() => {}
            other => prop_assert!(false, "{} = {:?}: {:?}", variable, junk, other.map(|_| ())),
        }
    }

    #[test]
    fn counts_accept_exactly_the_positive_whole_numbers(
        variable in prop::sample::select(vec![
            "INFERD_TRACE_STORE_TRACES",
            "INFERD_TRACE_STORE_SPANS",
            "OTEL_BSP_MAX_QUEUE_SIZE",
        ]),
        n in prop_oneof![
            Just(0u128),
            1..=1_000u128,
            any::<u64>().prop_map(u128::from),
            Just(u128::from(u64::MAX) + 1),
        ],
        pad in ows(),
    ) {
        let result = TelemetryConfig::from_env(&env(&[(variable, format!("{pad}{n}{pad}"))]));
        match (usize::try_from(n), result) {
            (Ok(n), Ok(config)) if n > 0 => {
                let got = match variable {
                    "INFERD_TRACE_STORE_TRACES" => config.trace_store.max_traces,
                    "INFERD_TRACE_STORE_SPANS" => config.trace_store.max_spans,
                    _ => config.batch.max_queue_size,
                };
                prop_assert_eq!(got, n);
            }
            (_, Err(Error::InvalidSetting { variable: v, .. })) => {
                prop_assert_eq!(v, variable);
                prop_assert!(usize::try_from(n).map_or(true, |n| n == 0), "{} rejected", n);
            }
            (_, other) => prop_assert!(false, "{} = {}: {:?}", variable, n, other.map(|_| ())),
        }
    }

    #[test]
    fn a_scheme_decides_tls_and_insecure_decides_only_for_a_grpc_host_port(
        host in prop_oneof![
            re("[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,6}){0,2}"),
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned()),
        ],
        port in prop::option::of(1..=65535u16),
        scheme in prop::sample::select(vec!["", "http://", "https://"]),
        insecure in prop::option::of(any::<bool>()),
        per_signal in any::<bool>(),
        http in any::<bool>(),
    ) {
        let address = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let endpoint_var = if per_signal {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        } else {
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        };
        let mut vars = vec![(endpoint_var, format!("{scheme}{address}"))];
        if let Some(insecure) = insecure {
            vars.push(("OTEL_EXPORTER_OTLP_TRACES_INSECURE", insecure.to_string()));
        }
        if http {
            vars.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()));
        }
        let result = TelemetryConfig::from_env(&env(&vars));
        let expected_scheme = match (scheme, http, insecure) {
            ("", true, _) => None,
            ("", false, Some(true)) => Some("http://"),
            ("", false, _) => Some("https://"),
            (given, _, _) => Some(given),
        };
        match (expected_scheme, result) {
            (Some(expected), Ok(config)) => {
                let endpoint = &config.otlp_traces.endpoint;
                prop_assert!(
                    endpoint.starts_with(&format!("{expected}{address}")),
                    "{:?} gave {}", vars, endpoint
                );
                prop_assert_eq!(config.otlp_traces.insecure, insecure.unwrap_or(false));
            }
            (None, Err(Error::InvalidSetting { variable, value, .. })) => {
                prop_assert_eq!(variable, endpoint_var);
                prop_assert_eq!(value, address);
            }
            (expected, other) => {
                prop_assert!(false, "{:?}: expected {:?}, got {:?}", vars, expected, other);
            }
        }
    }

    #[test]
    fn mtls_needs_a_certificate_and_a_key_for_each_signal_from_either_variable(
        general_certificate in any::<bool>(),
        general_key in any::<bool>(),
        traces_certificate in any::<bool>(),
        traces_key in any::<bool>(),
    ) {
        let mut vars = Vec::new();
        for (set, variable) in [
            (general_certificate, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            (general_key, "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            (traces_certificate, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"),
            (traces_key, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"),
        ] {
            if set {
                vars.push((variable, format!("/pki/{variable}.pem")));
            }
        }
        let traces = (
            general_certificate || traces_certificate,
            general_key || traces_key,
        );
        let others = (general_certificate, general_key);
        let complete = |(certificate, key): (bool, bool)| certificate == key;
        match TelemetryConfig::from_env(&env(&vars)) {
            Ok(config) => {
                prop_assert!(complete(traces) && complete(others), "{:?} accepted", vars);
                let identity = config.otlp_traces.client_identity.clone();
                prop_assert_eq!(identity.is_some(), traces.0);
                if let Some(identity) = identity {
                    let expected = if traces_certificate {
                        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"
                    } else {
                        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
                    };
                    prop_assert_eq!(identity.certificate.variable.as_str(), expected);
                    let expected = if traces_key {
                        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
                    } else {
                        "OTEL_EXPORTER_OTLP_CLIENT_KEY"
                    };
                    prop_assert_eq!(identity.key.variable.as_str(), expected);
                }
                prop_assert_eq!(config.otlp_metrics.client_identity.is_some(), others.0);
            }
            Err(Error::InvalidSetting { variable, value, expected }) => {
                prop_assert!(!(complete(traces) && complete(others)), "{:?} rejected", vars);
                prop_assert_eq!(value, format!("/pki/{variable}.pem"));
                let twin = if variable.ends_with("CLIENT_KEY") {
                    "CLIENT_CERTIFICATE"
                } else {
                    "CLIENT_KEY"
                };
                prop_assert!(expected.contains(&format!("OTEL_EXPORTER_OTLP_{twin}")), "{}", expected);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn sampler_ratio_is_accepted_exactly_from_0_to_1(
        x in prop_oneof![
            0.0..=1.0f64,
            any::<f64>(),
            Just(0.0),
            Just(1.0),
            Just(-0.0),
            Just(1.0 + f64::EPSILON),
        ],
        form in 0..3u8,
        sampler in prop::sample::select(vec!["traceidratio", "parentbased_traceidratio"]),
    ) {
        let text = match form {
            0 => x.to_string(),
            1 => format!("{x:e}"),
            _ => format!(" {x:?} "),
        };
        let result = TelemetryConfig::from_env(&env(&[
            ("OTEL_TRACES_SAMPLER", sampler.to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", text.clone()),
        ]));
        match result {
            Ok(config) => {
                prop_assert!((0.0..=1.0).contains(&x), "{:?} accepted", text);
                prop_assert_eq!(config.sampler.ratio, x);
                prop_assert_eq!(config.sampler.parent_based, sampler.starts_with("parentbased"));
            }
            Err(Error::InvalidSetting { variable, .. }) => {
                prop_assert!(!(0.0..=1.0).contains(&x), "{:?} rejected", text);
                prop_assert_eq!(variable, "OTEL_TRACES_SAMPLER_ARG");
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}
