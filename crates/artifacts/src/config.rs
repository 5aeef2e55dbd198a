//! Settings of the artifact store: where the cache is and how to reach S3. Built once at
//! start-up; the environment is read through [`EnvSource`] so tests never touch the process's.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use inferd_otel::EnvSource;

/// The artifact store's settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Downloads land here (created when missing).
    pub cache_dir: PathBuf,
    /// How to reach S3 for `s3://` sources.
    pub s3: S3Config,
    /// Re-hash cached files on every hit (slow for big files); by default a hit is checked
    /// by size and the sha256 stored when it was downloaded.
    pub rehash_cache_hits: bool,
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response body before the download fails.
    pub read_timeout: Duration,
}

impl StoreConfig {
    /// Defaults with the cache at `cache_dir` and S3 settings from nowhere (set `s3`).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            s3: S3Config::default(),
            rehash_cache_hits: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// The default cache: `$INFERD_HOME/models`, else `$HOME/.cache/inferd/models`.
pub fn default_cache_dir(env: &dyn EnvSource) -> Option<PathBuf> {
    if let Some(home) = env.get("INFERD_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home).join("models"));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".cache/inferd/models"))
}

/// S3 connection settings. Unset fields fall back to object_store's defaults (region
/// `us-east-1`; credentials from the instance metadata service).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000` (AWS_ENDPOINT_URL).
    pub endpoint: Option<String>,
    /// Region (AWS_REGION, AWS_DEFAULT_REGION).
    pub region: Option<String>,
    /// Access key id (AWS_ACCESS_KEY_ID).
    pub access_key_id: Option<String>,
    /// Secret access key (AWS_SECRET_ACCESS_KEY).
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (AWS_SESSION_TOKEN).
    pub session_token: Option<String>,
    /// Allow a plain-http endpoint (AWS_ALLOW_HTTP=true).
    pub allow_http: bool,
    /// Send unsigned requests, for public buckets (AWS_SKIP_SIGNATURE=true).
    pub skip_signature: bool,
}

impl S3Config {
    /// Reads the standard AWS variables: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL,
    /// AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, AWS_ALLOW_HTTP, AWS_SKIP_SIGNATURE.
    pub fn from_env(env: &dyn EnvSource) -> Self {
        let get = |key: &str| env.get(key).filter(|v| !v.is_empty());
        let flag = |key: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Self {
            endpoint: get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            session_token: get("AWS_SESSION_TOKEN"),
            allow_http: flag("AWS_ALLOW_HTTP"),
            skip_signature: flag("AWS_SKIP_SIGNATURE"),
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret(&self.secret_access_key))
            .field("session_token", &secret(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("skip_signature", &self.skip_signature)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn s3_settings_come_from_the_standard_variables() {
        let cfg = S3Config::from_env(&env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_ALLOW_HTTP", "true"),
        ]));
        assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert!(cfg.allow_http && !cfg.skip_signature);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        let s3_specific = S3Config::from_env(&env(&[
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_ENDPOINT_URL_S3", "http://s3-only"),
        ]));
        assert_eq!(s3_specific.endpoint.as_deref(), Some("http://s3-only"));
    }

    #[test]
    fn default_cache_dir_prefers_inferd_home() {
        assert_eq!(
            default_cache_dir(&env(&[("INFERD_HOME", "/srv/inferd"), ("HOME", "/home/u")])),
            Some(PathBuf::from("/srv/inferd/models"))
        );
        assert_eq!(
            default_cache_dir(&env(&[("HOME", "/home/u")])),
            Some(PathBuf::from("/home/u/.cache/inferd/models"))
        );
        assert_eq!(default_cache_dir(&env(&[])), None);
    }
}
