//! The `upstreams` of `inferd serve`: `--upstream [NAME=]URL` on the command line, or
//! `[[upstreams]]` tables in the `--config` file with every setting.

use std::time::Duration;

use anyhow::{bail, Context};
use inferd_gateway::{proxy_from_env, ModelRoute, UpstreamConfig};
use inferd_otel::EnvSource;
use serde::Deserialize;

/// One `[[upstreams]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// Defaults to the URL's host:port.
    name: Option<String>,
    /// The upstream's OpenAI API base, e.g. `http://vllm:8000/v1`.
    url: String,
    /// `gen_ai.provider.name` of its generations [default: openai].
    provider: Option<String>,
    /// Name of the environment variable holding its API key (sent as a bearer token).
    api_key_env: Option<String>,
    /// Name of the environment variable holding its admin token (an inferd upstream's
    /// `--admin-token`), with which the gateway reads its `/debug/traces`.
    admin_token_env: Option<String>,
    /// Models it serves, `ID` or `ID=UPSTREAM_MODEL`; without it, its /models is asked.
    models: Option<Vec<String>>,
    connect_timeout_ms: Option<u64>,
    first_token_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    max_concurrent: Option<usize>,
    max_retries: Option<u32>,
    probe_interval_ms: Option<u64>,
    /// `http://[user:password@]host:port`, or `none`; default: the proxy environment variables.
    proxy: Option<String>,
}

/// `--upstream [NAME=]URL`; `env` reads the proxy variables.
pub fn from_flag(arg: &str, env: &dyn EnvSource) -> anyhow::Result<UpstreamConfig> {
    let (name, url) = split_name(arg);
    let url = url.trim();
    check_url(url)?;
    let name = name.map_or_else(|| default_name(url), str::to_owned);
    let mut config = UpstreamConfig::new(name, url);
    config.proxy = proxy_from_env(url, env);
    Ok(config)
}

/// A `[[upstreams]]` table; `env` reads the API key and proxy variables.
pub fn from_file(file: FileUpstream, env: &dyn EnvSource) -> anyhow::Result<UpstreamConfig> {
    check_url(&file.url)?;
    let name = file.name.unwrap_or_else(|| default_name(&file.url));
    let mut config = UpstreamConfig::new(name.clone(), &file.url);
    config.proxy = match file.proxy.as_deref().map(str::trim) {
        Some("none" | "") => None,
        Some(url) => Some(url.to_owned()),
        None => proxy_from_env(&file.url, env),
    };
    if let Some(provider) = file.provider {
        config.provider = provider;
    }
    if let Some(var) = file.api_key_env {
        let key = env.get(&var).with_context(|| {
            format!("upstream `{name}`: api_key_env names `{var}`, which is not set")
        })?;
        config.api_key = Some(key);
    }
    if let Some(var) = file.admin_token_env {
        let token = env.get(&var).with_context(|| {
            format!("upstream `{name}`: admin_token_env names `{var}`, which is not set")
        })?;
        config.admin_token = Some(token);
    }
    config.models = file
        .models
        .unwrap_or_default()
        .iter()
        .map(|m| ModelRoute::parse(m))
        .collect();
    if config
        .models
        .iter()
        .any(|r| r.id.is_empty() || r.upstream_model.is_empty())
    {
        bail!("upstream `{name}`: models entries are `ID` or `ID=UPSTREAM_MODEL`, never empty");
    }
    let ms = |v: Option<u64>, field: &str, default: Duration| -> anyhow::Result<Duration> {
        match v {
            Some(0) => bail!("upstream `{name}`: {field} must be at least 1"),
            Some(v) => Ok(Duration::from_millis(v)),
            None => Ok(default),
        }
    };
    let t = config.timeouts;
    config.timeouts.connect = ms(file.connect_timeout_ms, "connect_timeout_ms", t.connect)?;
    config.timeouts.first_token = ms(
        file.first_token_timeout_ms,
        "first_token_timeout_ms",
        t.first_token,
    )?;
    config.timeouts.total = ms(file.total_timeout_ms, "total_timeout_ms", t.total)?;
    config.probe_interval = ms(
        file.probe_interval_ms,
        "probe_interval_ms",
        config.probe_interval,
    )?;
    if let Some(n) = file.max_concurrent {
        if n == 0 {
            bail!("upstream `{name}`: max_concurrent must be at least 1");
        }
        config.max_concurrent = n;
    }
    if let Some(n) = file.max_retries {
        config.max_retries = n;
    }
    Ok(config)
}

/// `NAME=URL` or `URL` (an `=` inside the URL's query is not a name).
fn split_name(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((name, url)) if !name.contains(':') && !name.contains('/') => (Some(name.trim()), url),
        _ => (None, arg),
    }
}

fn check_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("upstream URL `{url}` must start with http:// or https:// (its OpenAI API base, e.g. http://host:8000/v1)");
    }
    Ok(())
}

/// `host:port` of the URL.
fn default_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_an_optional_name() {
        let no_env = |_: &str| None;
        let named = from_flag("back=http://127.0.0.1:9000/v1", &no_env).expect("named");
        assert_eq!(named.name, "back");
        assert_eq!(named.base_url, "http://127.0.0.1:9000/v1");
        let bare = from_flag("http://10.0.0.2:8000/v1/?a=b", &no_env).expect("bare");
        assert_eq!(bare.name, "10.0.0.2:8000");
        let err = from_flag("back=localhost:9000", &no_env).expect_err("no scheme");
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn file_tables_set_every_field_and_read_the_key_variable() {
        let file: FileUpstream = toml::from_str(
            r#"
            name = "vllm"
            url = "http://gpu:8000/v1"
            provider = "vllm"
            api_key_env = "VLLM_KEY"
            models = ["chat=meta-llama/Llama-3-8B", "plain"]
            first_token_timeout_ms = 1500
            max_concurrent = 8
            max_retries = 0
            probe_interval_ms = 250
            "#,
        )
        .expect("toml");
        let env = |k: &str| (k == "VLLM_KEY").then(|| "sk-123".to_owned());
        let config = from_file(file.clone(), &env).expect("config");
        assert_eq!(config.provider, "vllm");
        assert_eq!(config.api_key.as_deref(), Some("sk-123"));
        assert_eq!(config.models[0].upstream_model, "meta-llama/Llama-3-8B");
        assert_eq!(config.models[1].id, "plain");
        assert_eq!(config.timeouts.first_token, Duration::from_millis(1500));
        assert_eq!(config.max_concurrent, 8);
        assert_eq!(config.max_retries, 0);
        assert_eq!(config.probe_interval, Duration::from_millis(250));
        assert_eq!(config.proxy, None);
        let err = from_file(file, &|_: &str| None::<String>).expect_err("unset variable");
        assert!(err.to_string().contains("VLLM_KEY"), "{err}");
        let bad = toml::from_str::<FileUpstream>("url = \"http://x/v1\"\ntimeout = 3\n");
        assert!(bad.is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_proxy_comes_from_the_table_or_else_from_the_environment() {
        let env = |k: &str| match k {
            "HTTP_PROXY" => Some("http://proxy:3128".to_owned()),
            "NO_PROXY" => Some("internal.example".to_owned()),
            _ => None,
        };
        let table = |extra: &str| -> FileUpstream {
            toml::from_str(&format!("url = \"http://gpu:8000/v1\"\n{extra}")).expect("toml")
        };
        let from_env = from_file(table(""), &env).expect("config");
        assert_eq!(from_env.proxy.as_deref(), Some("http://proxy:3128"));
        let explicit = from_file(table("proxy = \"http://other:8080\""), &env).expect("config");
        assert_eq!(explicit.proxy.as_deref(), Some("http://other:8080"));
        let none = from_file(table("proxy = \"none\""), &env).expect("config");
        assert_eq!(none.proxy, None);
        let flag = from_flag("http://gpu:8000/v1", &env).expect("flag");
        assert_eq!(flag.proxy.as_deref(), Some("http://proxy:3128"));
        let bypassed = from_flag("http://api.internal.example/v1", &env).expect("flag");
        assert_eq!(bypassed.proxy, None, "NO_PROXY matches subdomains");
    }
}
