//! Property tests of `parse_bytes`, which reads the sizes an operator writes in the config file
//! and flags (`2GiB`, `512 MiB`, `1.5GB`, `800M`, plain bytes): every in-range whole number
//! times its unit is exact, fractions are right to the byte, anything past 10^18 bytes is an
//! error (never a wrapped or saturated number), and no text makes it panic.

#![allow(clippy::unwrap_used)]

use inferd_testkit::{config, re};
use proptest::prelude::*;

use super::*;

/// The largest size accepted.
const MAX: u128 = 1_000_000_000_000_000_000;

/// Every unit spelling and its factor.
const UNITS: &[(&str, u128)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// A unit in any letter case.
fn unit() -> impl Strategy<Value = (String, u128)> {
    (prop::sample::select(UNITS), any::<u64>()).prop_map(|((unit, factor), case)| {
        let unit: String = unit
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        (unit, factor)
    })
}

/// Spaces around the size and between number and unit, as people write them.
fn spaces() -> impl Strategy<Value = (&'static str, &'static str, &'static str)> {
    let s = || prop::sample::select(vec!["", "", " ", "  ", "\t"]);
    (s(), s(), s())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_gives_a_size_in_range_or_an_error(
        text in prop_oneof![
            re("[0-9.]{0,24}[ ]?[kKmMgGtTiIbB]{0,4}"),
            re("\\PC{0,16}"),
            re(concat!(
                "[+-]?[0-9]{0,30}(\\.[0-9]{0,30})?(e[+-]?[0-9]{1,4})?",
                "[ \t]?(nan|inf|b|kib|\\PC{0,3})"
            )),
        ],
    ) {
        if let Ok(n) = parse_bytes(&text) {
            prop_assert!((1..=MAX).contains(&u128::from(n)), "{:?} gave {}", text, n);
        }
    }

    #[test]
    fn whole_numbers_times_their_unit_are_exact(
        (unit, factor) in unit(),
        fraction in any::<prop::sample::Index>(),
        small in 1..=4096u64,
        (before, between, after) in spaces(),
    ) {
        // Small numbers and numbers anywhere up to the limit.
        let max = MAX / factor;
        let n = if fraction.index(4) == 0 {
            u128::from(small).min(max)
        } else {
            1 + fraction.index(usize::try_from(max).unwrap_or(usize::MAX)) as u128
        };
        let text = format!("{before}{n}{between}{unit}{after}");
        let got = parse_bytes(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e:#}")))?;
        prop_assert_eq!(u128::from(got), n * factor, "{:?}", text);
    }

    #[test]
    fn sizes_past_the_limit_are_errors_not_wrapped(
        (unit, factor) in unit(),
        n in prop_oneof![
            any::<u64>().prop_map(u128::from),
            any::<u128>(),
            Just(u128::from(u64::MAX) + 1),
        ],
        digits in re("[1-9][0-9]{19,40}"),
    ) {
        if n.checked_mul(factor).is_none_or(|bytes| bytes > MAX) {
            let text = format!("{n}{unit}");
            let got = parse_bytes(&text);
            prop_assert!(got.is_err(), "{:?} accepted: {:?}", text, got);
        }
        let text = format!("{digits}{unit}");
        let got = parse_bytes(&text);
        prop_assert!(got.is_err(), "{:?} accepted: {:?}", text, got);
    }

    #[test]
    fn fractions_are_right_to_the_byte(
        (unit, factor) in unit(),
        whole in any::<prop::sample::Index>(),
        decimals in re("[0-9]{1,6}"),
    ) {
        let whole = whole.index(usize::try_from((1u128 << 40) / factor).unwrap_or(1)) as u128;
        // The exact size is (whole + decimals / 10^d) × factor; keep it where f64 is exact to
        // well under a byte.
        let d = u32::try_from(decimals.len()).unwrap_or(6);
        let scale = 10u128.pow(d);
        let exact_num = (whole * scale + decimals.parse::<u128>().unwrap_or(0)) * factor;
        prop_assume!(exact_num >= scale && exact_num / scale < (1 << 40));
        let text = format!("{whole}.{decimals}{unit}");
        let got = u128::from(
            parse_bytes(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e:#}")))?,
        );
        // Less than a byte off (floor or ceiling), and exact when the size is whole.
        let diff = (got * scale).abs_diff(exact_num);
        prop_assert!(diff < scale, "{:?} gave {}, exact {}/{}", text, got, exact_num, scale);
    }

    #[test]
    fn zero_and_unknown_units_are_errors(
        (unit, _) in unit(),
        zeros in re("0{1,4}(\\.0{0,3})?"),
        n in 1..1000u32,
        bad in re("[a-zA-Z%µ]{1,4}").prop_filter("not a unit", |u| {
            !UNITS.iter().any(|(known, _)| known.eq_ignore_ascii_case(u.trim()))
        }),
    ) {
        let zero = format!("{zeros}{unit}");
        prop_assert!(parse_bytes(&zero).is_err(), "{:?} accepted", zero);
        let text = format!("{n}{bad}");
        let err = parse_bytes(&text)
            .err()
            .ok_or_else(|| TestCaseError::fail(format!("{text:?} accepted")))?;
        prop_assert!(format!("{err:#}").contains("unit"), "{:?}: {:#}", text, err);
    }
}
