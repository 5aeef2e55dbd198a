//! What the tests of inferd's crates share: the property tests' run configuration, a regex
//! strategy, and temp dirs. A dev-dependency only; nothing inferd ships depends on it.

use proptest::prelude::*;

/// The configuration every property test runs with: 10 000 cases, a fast generator, and no
/// failure files written into the source tree (a failing case is printed instead).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// A precompiled regex strategy (a `&str` strategy compiles its regex for every value).
pub fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid regex")
        .boxed()
}

/// A fresh, empty directory under the system temp dir named `inferd-{name}-…`, removed with
/// everything in it when dropped, so the tests leave nothing behind.
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("inferd-{name}-"))
        .tempdir()
        .expect("create a temp dir")
}
