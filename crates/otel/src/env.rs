//! The one source of environment variables every crate's configuration reads: the binary
//! reads the process environment once and hands the same source to each reader.

use std::collections::HashMap;

/// Where configuration values come from. Tests pass a map; the binary passes [`ProcessEnv`].
pub trait EnvSource {
    /// The value of `key`, or `None` when unset.
    fn get(&self, key: &str) -> Option<String>;
}

/// Reads the real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> EnvSource for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource for F {
    fn get(&self, key: &str) -> Option<String> {
        self(key)
    }
}
