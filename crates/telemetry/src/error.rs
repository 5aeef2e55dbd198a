//! The errors start-up can report: a bad setting, or an exporter that could not be built.

/// Why telemetry could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration variable (or its CLI twin) holds a value inferd does not accept.
    #[error("invalid value {value:?} for {variable}: expected {expected}")]
    InvalidSetting {
        /// The environment variable (or flag) that held the value.
        variable: String,
        /// The value as given.
        value: String,
        /// The accepted values, in words.
        expected: String,
    },
    /// An exporter could not be built from a valid configuration.
    #[error("cannot build the {signal} exporter for {endpoint}: {reason}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// The endpoint it was meant to send to.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// Metrics could not be collected (e.g. after shutdown).
    #[error("cannot collect metrics: {0}")]
    Metrics(String),
    /// The global tracing subscriber was already set by someone else.
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
}

impl Error {
    pub(crate) fn invalid(variable: &str, value: &str, expected: &str) -> Self {
        Error::InvalidSetting {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }
}
