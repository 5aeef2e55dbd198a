//! The `inferd` binary: parses the command line and starts the server.

mod alloc;
mod config;
mod models;
mod pull;
mod resolver;
mod upstreams;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use inferd_engine::ModelRegistry;
use inferd_server::{AppState, TelemetryHandles};

use crate::config::ServeArgs;
use crate::pull::PullArgs;

/// mimalloc in place of the system allocator (see alloc.rs).
#[global_allocator]
static ALLOCATOR: alloc::MiMalloc = alloc::MiMalloc;

/// inferd: an LLM inference server you can see inside.
///
/// Serves local GGUF models through an OpenAI-compatible HTTP API
/// (/v1/chat/completions, /v1/completions, /v1/models).
#[derive(Debug, Parser)]
#[command(name = "inferd", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  inferd serve                                  serve the default model (smollm2-135m) on 127.0.0.1:8080
  inferd serve --model ./my-model.gguf --port 9000
  inferd serve --model chat=/models/a.gguf --model /models/b.gguf --threads 4
  inferd serve --upstream vllm=http://gpu-box:8000/v1    route the upstream's models (gateway)
  inferd pull https://example.com/models/model.gguf --sha256 <64 hex>
  inferd bench --url http://127.0.0.1:8080 --model smollm2-135m --rate 2 --duration 30s
  curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
       -d '{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}'

Logs go to stderr (JSON lines unless on a terminal); INFERD_LOG (e.g. debug, or
info,inferd_engine=debug) sets the level. Telemetry: --telemetry off|local|otlp|console, and the
standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 selects otlp).";

// Built once from the command line; the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Start the HTTP server.
    ///
    /// Listens on 127.0.0.1:8080 by default. The default model is fetched into the cache by
    /// `make model` (scripts/fetch-default-model.sh).
    Serve(ServeArgs),
    /// Download a model into the cache (http(s)://, s3://, file://) and print its path.
    ///
    /// Shows a progress bar on a terminal (plain lines otherwise); resumes an interrupted
    /// download when the server allows it; with --sha256, a mismatch caches nothing.
    Pull(PullArgs),
    /// Load-test an OpenAI-compatible server (inferd, vLLM, llama.cpp server, ...), or compare
    /// two reports (`inferd bench compare A.json B.json`).
    ///
    /// Stages of a request rate (constant or Poisson) or a concurrency; synthetic, JSONL or
    /// ShareGPT prompts; TTFT, TPOT, inter-token and end-to-end latency per stage; a JSON report,
    /// SVG charts, and a CLIENT span per request when tracing is on.
    Bench(inferd_bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Pull(args) => pull::pull(args),
        Command::Bench(args) => inferd_bench::run(args),
    }
}

/// How long shutdown waits for local engines to stop decoding once the connections closed.
const ENGINE_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How long shutdown waits for telemetry to flush (a dead collector must not hang exit).
const TELEMETRY_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The one place `serve` reads the process environment (clap's `env = "INFERD_*"` aside):
    // every other reader is handed this source.
    let env = inferd_otel::ProcessEnv;
    let user_home = inferd_otel::EnvSource::get(&env, "HOME").map(PathBuf::from);
    let (config, mut telemetry_config) = args.load(user_home.as_deref(), &env)?;
    telemetry_config.service_version = env!("CARGO_PKG_VERSION").to_owned();
    // The llama-cpp-2 bindings wrap their calls (model load, chat template) in INFO spans; they
    // are not request steps and would each become a trace of their own.
    // The access line is a log line, not a span event: the HTTP span already has its facts.
    // llama.cpp's log lines (target `llama-cpp-2`, a hundred at each model load) are not steps
    // of anything: they stay out of spans as events.
    telemetry_config.span_filter =
        "info,llama_cpp_2=off,llama-cpp-2=off,inferd::access=off".to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.http_workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Log lines are written by a background thread in batches (a line waits at most ~10 ms),
    // so a request neither waits on stderr nor wakes a thread; the guard writes what is left
    // when `serve` returns. Not lossy: if stderr is stuck, writers wait rather than drop lines.
    let (log_writer, _log_flush) = inferd_telemetry::BatchedWriter::spawn(
        std::io::stderr(),
        inferd_telemetry::LOG_FLUSH_INTERVAL,
        "inferd-log",
    )
    .context("cannot start the log writer thread")?;
    let telemetry = runtime.block_on(async move {
        // gRPC export needs the runtime, so telemetry starts inside it.
        let telemetry = inferd_telemetry::init_with_writer(&telemetry_config, log_writer)
            .context("cannot start telemetry")?;
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let redactor: Option<Arc<dyn inferd_engine::hooks::Redactor>> =
            if config.genai_redact.is_empty() {
                None
            } else {
                Some(Arc::new(
                    inferd_server::observe::redact::RegexRedactor::new(&config.genai_redact)
                        .map_err(anyhow::Error::msg)?,
                ))
            };
        let hooks =
            inferd_server::observe::hooks_for(&telemetry, config.genai_capture_max_bytes, redactor);
        let mut server_config = config.server;
        server_config.capture_content = telemetry.capture_message_content();
        let mut store_config = inferd_artifacts::StoreConfig::new(&config.models_dir);
        store_config.s3 = inferd_artifacts::S3Config::from_env(&env);
        let store = inferd_artifacts::ArtifactStore::with_observer(
            store_config,
            Arc::new(inferd_server::observe::artifact_spans::ArtifactSpans),
        )
        .context("cannot open the model cache")?;
        let gateway = inferd_gateway::Gateway::new(config.upstreams, config.ready_policy)
            .map_err(anyhow::Error::msg)?;
        gateway.spawn_probes();
        let gateway = Arc::new(gateway);
        inferd_server::observe::observe_upstreams(&telemetry, Arc::clone(&gateway));
        let registry = Arc::new(
            ModelRegistry::new(config.models, hooks.clone())
                .with_upstreams(Arc::clone(&gateway) as Arc<dyn inferd_engine::Upstreams>)
                .with_memory_budget(config.memory_budget)
                .with_resolver(Arc::new(resolver::StoreResolver::new(store))),
        );
        tokio::spawn(Arc::clone(&registry).load_all());
        let api_keys = inferd_server::auth::ApiKeys::new(
            config.api_keys.clone(),
            inferd_telemetry::InferdMetrics::from_guard(&telemetry).api_key_rejections,
        )
        .context("cannot load the API keys")?;
        api_keys.spawn_reloader();
        warn_if_exposed(local, &api_keys);
        let jobs = open_jobs(&config.jobs).await;
        if let Some(jobs) = &jobs {
            inferd_server::observe::observe_jobs(&telemetry, Arc::clone(&jobs.stats));
        }
        let state = AppState {
            registry: Arc::clone(&registry),
            gateway,
            config: Arc::new(server_config),
            telemetry: TelemetryHandles::from_guard(&telemetry),
            hooks,
            lifecycle: inferd_server::lifecycle::Lifecycle::default(),
            api_keys,
            jobs,
        };
        inferd_server::batch_worker::spawn(state.clone());
        tracing::info!(
            address = %format!("http://{local}"),
            telemetry = ?telemetry.mode(),
            http_workers = tokio::runtime::Handle::current().metrics().num_workers(),
            "inferd listening on http://{local}"
        );
        inferd_server::serve(listener, state, &telemetry, shutdown_signal())
            .await
            .context("server failed")?;
        // Requests ended at the shutdown deadline are cancelled; their engines notice at their
        // next step. Exiting under a thread still decoding crashes in llama.cpp's teardown.
        let engines_deadline = std::time::Instant::now() + ENGINE_STOP_DEADLINE;
        while !registry.engines_idle() && std::time::Instant::now() < engines_deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(telemetry)
    })?;
    // After in-flight requests drained: flush telemetry, bounded by a deadline.
    if let Err(e) = telemetry.shutdown(TELEMETRY_FLUSH_DEADLINE) {
        eprintln!("inferd: telemetry flush incomplete at shutdown: {e}");
    }
    Ok(())
}

/// Opens the job store (Redis when `--jobs-redis` is set, else the embedded one); without it
/// the server still serves, and the Files and Batch API answer 503 (another process may hold
/// the store, the directory is not writable, or Redis is unreachable).
async fn open_jobs(config: &config::JobsConfig) -> Option<inferd_server::batch_worker::Jobs> {
    let jobs = |queue| {
        inferd_server::batch_worker::Jobs::new(
            queue,
            config.visibility_timeout,
            config.batch_expiry,
        )
        .with_concurrency(config.batch_concurrency)
    };
    let dir = &config.dir;
    let Some(url) = config.redis.as_deref() else {
        return match inferd_jobs::JobStore::open(dir) {
            Ok(store) => Some(jobs(inferd_jobs::JobQueue::Embedded(Arc::new(store)))),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    jobs_dir = %dir.display(),
                    "cannot open the job store: /v1/files and /v1/batches answer 503; \
                     set --jobs-dir (INFERD_JOBS_DIR) to a directory of its own"
                );
                None
            }
        };
    };
    let consumer = format!("{}-{}", host_name(), std::process::id());
    match inferd_jobs::RedisStore::connect(url, &consumer, config.visibility_timeout).await {
        Ok(store) => {
            tracing::info!(consumer = %consumer, "batch queue on Redis");
            Some(jobs(inferd_jobs::JobQueue::Redis(store)))
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                "cannot reach the Redis job store (--jobs-redis): /v1/files and /v1/batches \
                 answer 503; check the URL and that Redis runs"
            );
            None
        }
    }
}

/// This machine's name, which with the pid names this process in the Redis consumer group.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "inferd".to_owned())
}

/// One clear warning when the API is reachable from other machines without a key.
fn warn_if_exposed(local: std::net::SocketAddr, keys: &inferd_server::auth::ApiKeys) {
    if keys.is_enabled() {
        tracing::info!(keys = keys.len(), "API keys required on /v1/*");
    } else if !local.ip().is_loopback() {
        tracing::warn!(
            address = %local,
            "listening on a non-loopback address without API keys: anyone who can reach it can \
             use the models; set --api-key or --api-key-file (INFERD_API_KEY, INFERD_API_KEY_FILE)"
        );
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
