//! inferd's gateway to remote upstreams: OpenAI-compatible servers (vLLM, TGI, SGLang,
//! llama.cpp server, Ollama, another inferd) that serve some models for inferd, behind the same
//! [`Backend`] trait as the local engine. The registry reaches it through the engine's
//! [`Upstreams`] trait; this crate holds all of inferd's outbound HTTP (the pooled client,
//! proxies and CONNECT tunnels, probes, retries, failover and timeouts).
//!
//! A [`Gateway`] holds the configured [`Upstream`]s. Each upstream has one pooled HTTP client,
//! a concurrency limit, and a probe task that asks its `/models` every `probe_interval`: the
//! answer says whether it is healthy and, when its models are not listed in the
//! configuration, which models it serves. Requests for a model of an upstream known to be down
//! fail at once with 503 naming it.

mod answer;
mod call;
mod client;
mod stack;
mod traces;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use inferd_openai::{Api, UpstreamModelList};
use tokio::sync::Semaphore;

use inferd_engine::EngineError;
use inferd_engine::{Backend, ModelInfo, Upstreams};

pub use call::RemoteBackend;
pub use client::proxy_from_env;

use client::{HttpClient, Proxy};
pub use traces::RemoteTrace;

/// A model an upstream serves: `id` as inferd's clients name it, `upstream_model` as the
/// upstream does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    pub id: String,
    pub upstream_model: String,
}

impl ModelRoute {
    /// `ID=UPSTREAM_MODEL` renames; a bare name is served under its own name.
    pub fn parse(spec: &str) -> Self {
        match spec.split_once('=') {
            Some((id, upstream)) => Self {
                id: id.trim().to_owned(),
                upstream_model: upstream.trim().to_owned(),
            },
            None => Self {
                id: spec.trim().to_owned(),
                upstream_model: spec.trim().to_owned(),
            },
        }
    }
}

/// Time limits of calls to one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request to the first generated text of a stream.
    pub first_token: Duration,
    /// The whole call.
    pub total: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// One upstream as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Named in errors, logs and `/ready`.
    pub name: String,
    /// The OpenAI API base, e.g. `http://vllm:8000/v1` (no trailing slash).
    pub base_url: String,
    /// `gen_ai.provider.name` of its generations (`openai`, `vllm`, `inferd`, …).
    pub provider: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Sent as `Authorization: Bearer` to an inferd upstream's `/debug/traces` (its
    /// `--admin-token`), when the gateway shows a trace across processes.
    pub admin_token: Option<String>,
    /// Models it serves; empty means "ask its /models".
    pub models: Vec<ModelRoute>,
    pub timeouts: UpstreamTimeouts,
    /// Requests in flight at once; more get 503 at once.
    pub max_concurrent: usize,
    /// Retries of a call that failed to connect or got 502/503, before any byte was streamed.
    pub max_retries: u32,
    /// How often `/models` is asked (health and model discovery).
    pub probe_interval: Duration,
    /// The HTTP proxy its calls go through, `http://[user:password@]host:port`; `None` goes
    /// straight to it (see [`proxy_from_env`] for the usual environment variables).
    pub proxy: Option<String>,
}

impl UpstreamConfig {
    /// An upstream with default settings at `base_url` (its `/v1` base).
    pub fn new(name: impl Into<String>, base_url: &str) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            provider: "openai".into(),
            api_key: None,
            admin_token: None,
            models: Vec::new(),
            timeouts: UpstreamTimeouts::default(),
            max_concurrent: 256,
            max_retries: 2,
            probe_interval: Duration::from_secs(5),
            proxy: None,
        }
    }
}

/// Which upstreams must be healthy for `/ready` to say ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadyPolicy {
    /// Every upstream.
    All,
    /// At least one.
    #[default]
    Any,
    /// Upstream health does not affect readiness.
    Ignore,
}

impl std::str::FromStr for ReadyPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "any" => Ok(Self::Any),
            "ignore" => Ok(Self::Ignore),
            other => Err(format!(
                "unknown upstream readiness policy `{other}`: expected all, any or ignore"
            )),
        }
    }
}

/// What the last probe (or call) said about an upstream.
#[derive(Debug, Clone, Default)]
struct Health {
    /// `None` until the first probe answered or failed.
    healthy: Option<bool>,
    /// Why it is unhealthy.
    reason: String,
    /// Models from its `/models`, when discovery is on and a probe succeeded.
    discovered: Option<Vec<ModelRoute>>,
}

/// An upstream's state as `/ready` and the admin views show it (and serialize it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    #[serde(rename = "url")]
    pub base_url: String,
    /// `None` while not probed yet.
    pub healthy: Option<bool>,
    pub reason: Option<String>,
    pub models: Vec<String>,
    /// The HTTP proxy its calls go through (without credentials), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Calls sent again after a failure (retries and connection failovers), since start.
    pub retries: u64,
}

/// What an upstream answered a GET with: a 2xx answer's body, or another status.
enum Got {
    Body(bytes::Bytes),
    Status(http::StatusCode),
}

/// Largest `/models` answer read from an upstream.
const MAX_MODEL_LIST: usize = 16 * 1024 * 1024;

/// One upstream: its configuration, pooled client, limits and health.
#[derive(Debug)]
pub struct Upstream {
    config: UpstreamConfig,
    client: HttpClient,
    /// `Authorization: Bearer <api_key>`, made once.
    authorization: Option<http::HeaderValue>,
    permits: Arc<Semaphore>,
    health: RwLock<Health>,
    /// `server.address` / `server.port`.
    server: (Arc<str>, u16),
    /// Its name and kind as `info` gives them (`owned_by`, `gen_ai.provider.name`).
    owner: Arc<str>,
    provider: Arc<str>,
    /// Its chat, text completion and embeddings endpoints, parsed once.
    chat: Endpoint,
    completions: Endpoint,
    embeddings: Endpoint,
    /// The proxy its calls go through, as shown (no credentials).
    via: Option<String>,
    /// Calls sent again after a failure, since start.
    retries: std::sync::atomic::AtomicU64,
}

/// The ids of discovered routes for a log line: `a, b`, or `(none)`.
fn discovered_names(routes: Option<&[ModelRoute]>) -> String {
    match routes {
        Some(routes) if !routes.is_empty() => routes
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "(none)".to_owned(),
    }
}

/// One of an upstream's URLs, parsed once (a call neither parses nor formats it again).
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) url: http::Uri,
    pub(crate) target: inferd_otel::ClientTarget,
}

impl Endpoint {
    fn new(upstream: &str, url: String) -> Result<Self, String> {
        let parsed = url
            .parse::<http::Uri>()
            .map_err(|e| format!("upstream `{upstream}`: invalid URL {url}: {e}"))?;
        Ok(Self {
            target: inferd_otel::ClientTarget::new(&url),
            url: parsed,
        })
    }
}

impl Upstream {
    fn new(config: UpstreamConfig) -> Result<Self, String> {
        let uri: http::Uri = config.base_url.parse().map_err(|e| {
            format!(
                "upstream `{}`: invalid URL {}: {e}",
                config.name, config.base_url
            )
        })?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "upstream `{}`: URL {} must start with http:// or https://",
                config.name, config.base_url
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| {
                format!(
                    "upstream `{}`: URL {} has no host",
                    config.name, config.base_url
                )
            })?
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if config.max_concurrent == 0 {
            return Err(format!(
                "upstream `{}`: max_concurrent must be at least 1",
                config.name
            ));
        }
        let proxy = match &config.proxy {
            Some(url) => {
                Some(Proxy::parse(url).map_err(|e| format!("upstream `{}`: {e}", config.name))?)
            }
            None => None,
        };
        let via = proxy.as_ref().map(Proxy::shown);
        let client = HttpClient::new(&uri, proxy, config.timeouts.connect, config.max_concurrent)
            .map_err(|e| {
            format!(
                "upstream `{}`: cannot build its HTTP client: {e}",
                config.name
            )
        })?;
        let authorization = match &config.api_key {
            Some(key) => {
                let mut value =
                    http::HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                        format!(
                        "upstream `{}`: its API key holds characters an HTTP header cannot carry",
                        config.name
                    )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let endpoint = |api: Api| {
            Endpoint::new(
                &config.name,
                format!("{}{}", config.base_url, api.relative_path()),
            )
        };
        let chat = endpoint(Api::Chat)?;
        let completions = endpoint(Api::Completions)?;
        let embeddings = endpoint(Api::Embeddings)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(config.max_concurrent)),
            chat,
            completions,
            embeddings,
            client,
            authorization,
            health: RwLock::new(Health::default()),
            server: (host.into(), port),
            owner: config.name.as_str().into(),
            provider: config.provider.as_str().into(),
            via,
            config,
            retries: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn health(&self) -> std::sync::RwLockReadGuard<'_, Health> {
        // A poisoned lock only means a panic elsewhere; the health record is still valid.
        self.health.read().unwrap_or_else(|e| e.into_inner())
    }

    fn health_mut(&self) -> std::sync::RwLockWriteGuard<'_, Health> {
        self.health.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The routes it serves now: configured ones, or the last discovered list; `None` while
    /// that is unknown (never reached) or empty (an upstream still loading lists nothing).
    fn routes(&self) -> Option<Vec<ModelRoute>> {
        self.routes_in(&self.health())
    }

    /// [`Upstream::routes`] with the health record already locked.
    fn routes_in(&self, health: &Health) -> Option<Vec<ModelRoute>> {
        if !self.config.models.is_empty() {
            return Some(self.config.models.clone());
        }
        health.discovered.clone().filter(|d| !d.is_empty())
    }

    fn route(&self, model: &str) -> Option<ModelRoute> {
        if let Some(route) = self.config.models.iter().find(|r| r.id == model) {
            return Some(route.clone());
        }
        if !self.config.models.is_empty() {
            return None;
        }
        self.health()
            .discovered
            .as_ref()
            .and_then(|routes| routes.iter().find(|r| r.id == model).cloned())
    }

    /// Its URL of `api`.
    fn endpoint(&self, api: Api) -> &Endpoint {
        match api {
            Api::Chat => &self.chat,
            Api::Completions => &self.completions,
            Api::Embeddings => &self.embeddings,
        }
    }

    /// Requests it is answering now.
    fn in_flight(&self) -> usize {
        self.config
            .max_concurrent
            .saturating_sub(self.permits.available_permits())
    }

    /// Fails fast when the upstream is known to be down.
    fn check_healthy(&self) -> Result<(), EngineError> {
        let health = self.health();
        match health.healthy {
            Some(false) => Err(EngineError::UpstreamUnavailable {
                upstream: self.config.name.clone(),
                reason: format!(
                    "{} (at {}; probed every {}s)",
                    health.reason,
                    self.config.base_url,
                    self.config.probe_interval.as_secs_f64()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Records a failure to reach the upstream seen by a call; the probe clears it.
    fn mark_unhealthy(&self, reason: &str) {
        let was = {
            let mut health = self.health_mut();
            let was = health.healthy;
            health.healthy = Some(false);
            health.reason = reason.to_owned();
            was
        };
        if was != Some(false) {
            tracing::warn!(upstream = %self.config.name, url = %self.config.base_url, reason, "upstream unavailable");
        }
    }

    /// Asks `/models` once and records the answer.
    async fn probe(&self) {
        let result = self.fetch_models().await;
        let was = self.health().healthy;
        let mut health = self.health_mut();
        match result {
            Ok(models) => {
                health.healthy = Some(true);
                health.reason.clear();
                if self.config.models.is_empty() {
                    health.discovered = Some(
                        models
                            .into_iter()
                            .map(|id| ModelRoute {
                                upstream_model: id.clone(),
                                id,
                            })
                            .collect(),
                    );
                }
                if was == Some(false) {
                    tracing::info!(upstream = %self.config.name, url = %self.config.base_url, "upstream available again");
                } else if was.is_none() {
                    tracing::info!(upstream = %self.config.name, url = %self.config.base_url, models = %discovered_names(health.discovered.as_deref()), proxy = self.via.as_deref().unwrap_or("none"), "upstream available");
                }
            }
            Err(reason) => {
                health.healthy = Some(false);
                if was != Some(false) {
                    tracing::warn!(upstream = %self.config.name, url = %self.config.base_url, reason = %reason, "upstream unavailable");
                }
                health.reason = reason;
            }
        }
    }

    /// `GET url` with `authorization`, reading at most `max` bytes of a 2xx answer (`what`
    /// names it in errors), all within twice the connect timeout. Any other answer is
    /// `Ok(Got::Status)`; `Err` says why there was no answer.
    async fn get(
        &self,
        url: &str,
        authorization: Option<&http::HeaderValue>,
        max: usize,
        what: &str,
    ) -> Result<Got, String> {
        let mut request = http::Request::get(url);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Default::default())
            .map_err(|e| format!("GET {url}: cannot build the request: {e}"))?;
        let limit = self.config.timeouts.connect * 2;
        let fetch = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| format!("GET {url} failed: {}", client::describe(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Ok(Got::Status(status));
            }
            client::read_body(response.into_body(), max)
                .await
                .map(Got::Body)
                .map_err(|e| format!("GET {url}: cannot read {what}: {e}"))
        };
        tokio::time::timeout(limit, fetch).await.map_err(|_| {
            format!(
                "GET {url} failed: no answer within {}s",
                limit.as_secs_f64()
            )
        })?
    }

    /// Why `GET url` answered with `status`, naming the proxy it went through.
    fn refused(&self, url: &str, status: http::StatusCode) -> String {
        match self.via.as_deref() {
            Some(proxy) if status == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                format!("GET {url}: {}", stack::proxy_auth_message(proxy))
            }
            Some(proxy) => format!("GET {url} answered {status} (through proxy {proxy})"),
            None => format!("GET {url} answered {status}"),
        }
    }

    async fn fetch_models(&self) -> Result<Vec<String>, String> {
        let url = format!("{}/models", self.config.base_url);
        let body = match self
            .get(
                &url,
                self.authorization.as_ref(),
                MAX_MODEL_LIST,
                "the model list",
            )
            .await?
        {
            Got::Body(body) => body,
            Got::Status(status) => return Err(self.refused(&url, status)),
        };
        let list: UpstreamModelList = serde_json::from_slice(&body)
            .map_err(|e| format!("GET {url} did not return a model list: {e}"))?;
        Ok(list.data.into_iter().map(|e| e.id).collect())
    }

    fn status(&self) -> UpstreamStatus {
        let health = self.health();
        UpstreamStatus {
            name: self.config.name.clone(),
            base_url: self.config.base_url.clone(),
            healthy: health.healthy,
            reason: (health.healthy == Some(false)).then(|| health.reason.clone()),
            models: self
                .routes_in(&health)
                .map(|r| r.iter().map(|r| r.id.clone()).collect())
                .unwrap_or_default(),
            proxy: self.via.clone(),
            retries: self.retries.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Counts one call sent again.
    fn count_retry(&self) {
        self.retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn info(&self) -> ModelInfo {
        ModelInfo {
            // Unknown for a remote model; the upstream enforces its own.
            context_length: 0,
            owned_by: Arc::clone(&self.owner),
            provider: Arc::clone(&self.provider),
            server: Some(self.server.clone()),
        }
    }
}

/// All configured upstreams, and the routing from model ids to them.
#[derive(Debug, Default)]
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    policy: ReadyPolicy,
    /// Turns of the round robin among equally busy upstreams serving one model.
    turn: AtomicUsize,
}

impl Gateway {
    /// Checks the configurations (URLs, unique names) and builds the clients. Probing starts
    /// with [`Gateway::spawn_probes`].
    pub fn new(configs: Vec<UpstreamConfig>, policy: ReadyPolicy) -> Result<Self, String> {
        let mut upstreams: Vec<Arc<Upstream>> = Vec::new();
        for config in configs {
            if upstreams.iter().any(|u| u.config.name == config.name) {
                return Err(format!(
                    "upstream name `{}` is given twice; name them NAME=URL",
                    config.name
                ));
            }
            upstreams.push(Arc::new(Upstream::new(config)?));
        }
        Ok(Self {
            upstreams,
            policy,
            turn: AtomicUsize::new(0),
        })
    }

    /// Whether any upstream is configured.
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Starts one probe task per upstream (on the current tokio runtime). The first probe
    /// runs at once.
    pub fn spawn_probes(&self) {
        for upstream in &self.upstreams {
            let upstream = Arc::clone(upstream);
            tokio::spawn(async move {
                loop {
                    upstream.probe().await;
                    tokio::time::sleep(upstream.config.probe_interval).await;
                }
            });
        }
    }

    /// Probes every upstream once, concurrently (start-up, tests).
    pub async fn probe_all(&self) {
        futures::future::join_all(self.upstreams.iter().map(|u| u.probe())).await;
    }

    /// The backend for `model`: `None` when no upstream serves it, an error when an upstream
    /// whose model list is still unknown (never reached) might.
    ///
    /// When several upstreams serve the model, the request goes to a healthy one with the
    /// fewest requests in flight (equals take turns), and fails over to the others.
    pub fn route(&self, model: &str) -> Option<Result<Arc<dyn Backend>, EngineError>> {
        let mut candidates: Vec<(Arc<Upstream>, ModelRoute)> = self
            .upstreams
            .iter()
            .filter_map(|u| u.route(model).map(|route| (Arc::clone(u), route)))
            .collect();
        if !candidates.is_empty() {
            if candidates.len() > 1 {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                let n = candidates.len();
                candidates.rotate_left(turn % n);
                // A stable sort: equals keep the rotated order.
                candidates.sort_by_cached_key(|(u, _)| {
                    (u.health().healthy == Some(false), u.in_flight())
                });
            }
            let backend: Arc<dyn Backend> = Arc::new(RemoteBackend::new(candidates));
            return Some(Ok(backend));
        }
        let unknown: Vec<&Arc<Upstream>> = self
            .upstreams
            .iter()
            .filter(|u| u.routes().is_none())
            .collect();
        let first = unknown.first()?;
        let health = first.health();
        let reason = if health.healthy.is_none() {
            "it has not been reached yet, so its models are not known".to_owned()
        } else if health.healthy == Some(true) {
            format!(
                "it lists no models yet (still loading?); asked again every {}s",
                first.config.probe_interval.as_secs_f64()
            )
        } else {
            format!(
                "its models are not known because it could not be reached: {}",
                health.reason
            )
        };
        Some(Err(EngineError::UpstreamUnavailable {
            upstream: first.config.name.clone(),
            reason: format!("{reason} (model `{model}` may be one of them)"),
        }))
    }

    /// Every model the upstreams serve (configured or discovered), with its facts; a model
    /// served by several upstreams is listed once, with the first one's facts.
    pub fn models(&self) -> Vec<(String, ModelInfo)> {
        let mut out: Vec<(String, ModelInfo)> = Vec::new();
        for upstream in &self.upstreams {
            for route in upstream.routes().unwrap_or_default() {
                if !out.iter().any(|(id, _)| *id == route.id) {
                    out.push((route.id, upstream.info()));
                }
            }
        }
        out
    }

    /// The state of every upstream.
    pub fn statuses(&self) -> Vec<UpstreamStatus> {
        self.upstreams.iter().map(|u| u.status()).collect()
    }

    /// Whether the upstreams satisfy the readiness policy.
    pub fn ready(&self) -> bool {
        let healthy = |u: &Arc<Upstream>| u.health().healthy == Some(true);
        match self.policy {
            ReadyPolicy::Ignore => true,
            _ if self.upstreams.is_empty() => true,
            ReadyPolicy::All => self.upstreams.iter().all(healthy),
            ReadyPolicy::Any => self.upstreams.iter().any(healthy),
        }
    }
}

/// The registry asks the gateway for every model it does not serve itself.
impl Upstreams for Gateway {
    fn route(&self, model: &str) -> Option<Result<Arc<dyn Backend>, EngineError>> {
        Gateway::route(self, model)
    }

    fn models(&self) -> Vec<(String, ModelInfo)> {
        Gateway::models(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_routes_rename_with_an_equals_sign() {
        assert_eq!(
            ModelRoute::parse("chat=meta-llama/Llama-3-8B"),
            ModelRoute {
                id: "chat".into(),
                upstream_model: "meta-llama/Llama-3-8B".into()
            }
        );
        assert_eq!(ModelRoute::parse("m").upstream_model, "m");
    }

    #[test]
    fn bad_upstream_urls_and_duplicate_names_are_refused() {
        let err = Gateway::new(
            vec![UpstreamConfig::new("a", "ftp://x/v1")],
            ReadyPolicy::Any,
        )
        .expect_err("scheme");
        assert!(err.contains("http://"), "{err}");
        let err = Gateway::new(
            vec![
                UpstreamConfig::new("a", "http://127.0.0.1:1/v1"),
                UpstreamConfig::new("a", "http://127.0.0.1:2/v1"),
            ],
            ReadyPolicy::Any,
        )
        .expect_err("duplicate");
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn configured_models_route_and_unknown_ones_do_not() {
        let mut config = UpstreamConfig::new("vllm", "http://127.0.0.1:9/v1/");
        config.models = vec![ModelRoute::parse("chat=big-model")];
        let gateway = Gateway::new(vec![config], ReadyPolicy::All).expect("gateway");
        assert!(gateway.route("chat").is_some_and(|r| r.is_ok()));
        assert!(gateway.route("other").is_none());
        let models = gateway.models();
        assert_eq!(models.len(), 1);
        assert_eq!(models[0].1.server, Some(("127.0.0.1".into(), 9)));
        assert!(!gateway.ready(), "not probed yet");
    }

    #[tokio::test]
    async fn an_unreachable_upstream_with_unknown_models_answers_503_naming_it() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let gateway = Gateway::new(
            vec![UpstreamConfig::new("back", "http://127.0.0.1:9/v1")],
            ReadyPolicy::Any,
        )
        .expect("gateway");
        gateway.probe_all().await;
        let err = match gateway.route("anything") {
            Some(Err(err)) => err,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(err.kind(), "upstream_unavailable");
        assert!(err.to_string().contains("`back`"), "{err}");
        assert!(!gateway.ready());
        assert_eq!(gateway.statuses()[0].healthy, Some(false));
    }
}
