//! The `inferd` binary: parses the command line and starts the server.

mod config;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use inferd_engine::ModelRegistry;
use inferd_server::AppState;
use tracing_subscriber::EnvFilter;

use crate::config::ServeArgs;

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
  curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
       -d '{\"model\":\"smollm2-135m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}'

Logs go to stderr; set INFERD_LOG (e.g. debug, or info,inferd_engine=debug) to change the level.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the HTTP server.
    ///
    /// Listens on 127.0.0.1:8080 by default. The default model is fetched into the cache by
    /// `make model` (scripts/fetch-default-model.sh).
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("INFERD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    let config = args.resolve(user_home.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let registry = Arc::new(ModelRegistry::new(config.models));
        tokio::spawn(Arc::clone(&registry).load_all());
        let state = AppState {
            registry,
            config: Arc::new(config.server),
        };
        tracing::info!(address = %format!("http://{local}"), "inferd listening on http://{local}");
        inferd_server::serve(listener, state, shutdown_signal())
            .await
            .context("server failed")?;
        tracing::info!("inferd stopped");
        Ok(())
    })
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
    tracing::info!("shutting down: finishing in-flight requests");
}
