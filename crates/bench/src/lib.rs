//! `inferd bench`: a traced load generator for any OpenAI-compatible server.
//!
//! A run is a sequence of stages (a request rate, constant or Poisson, or a fixed concurrency;
//! for a duration or a request count) over prompts that are synthetic, from a JSONL file or from
//! a ShareGPT file. Each request is timed on the client's clock (send, each SSE chunk, end); the
//! figures per stage go to a summary table, a JSON report (docs/bench.md) and optional SVG
//! charts. With tracing on, each request is a CLIENT span whose context the server joins.
//!
//! ```no_run
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     bench: inferd_bench::Args,
//! }
//! let cli = Cli::parse_from(["bench", "--url", "http://127.0.0.1:8080", "--model", "m", "--rate", "1"]);
//! inferd_bench::run(cli.bench).unwrap();
//! ```

mod args;
mod charts;
mod client;
mod compare;
mod config;
mod dataset;
mod report;
mod runner;
mod schedule;
mod stats;
mod trace;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

pub use args::{Args, BenchArgs, BenchCommand, CompareArgs};
pub use client::Outcome;
pub use config::{Arrival, Load, Plan, StageSpec, Stop};
pub use dataset::{DataSpec, LengthDistribution, LengthSpec, Prompt};
pub use report::{ErrorCount, Report, StageReport, WarmupReport, SCHEMA_VERSION};
pub use stats::Summary;

use crate::client::{error_chain, PreparedRequest, Target};
use crate::runner::Runner;
use crate::trace::Tracing;

/// How long telemetry may take to flush at the end.
const TELEMETRY_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Runs `inferd bench` (a load test, or `compare`). Errors are the user's to read: a bad flag,
/// config or data file, an unreachable server, an unknown model.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Compare(compare)) => compare::run(&compare),
        None => run_load(args.run).map(|_| ()),
    }
}

/// Runs a load test and returns its report (also printed, and written where asked).
pub fn run_load(args: BenchArgs) -> anyhow::Result<Report> {
    let plan = Plan::from_args(&args)?;
    let prompts = plan.data.load(plan.seed)?;
    let requests: Vec<PreparedRequest> = prompts
        .iter()
        .map(|p| PreparedRequest::new(&plan, p))
        .collect();
    let telemetry_config = trace::telemetry_config(&args, &inferd_otel::ProcessEnv)?;
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (report, telemetry) = runtime.block_on(async {
        // OTLP/gRPC export needs the runtime, so telemetry starts inside it.
        let telemetry = inferd_telemetry::init_with_writer(&telemetry_config, std::io::stderr)
            .context("cannot start telemetry")?;
        let report = execute(
            &plan,
            requests,
            args.api_key.as_deref(),
            telemetry.tracer(),
            progress,
        )
        .await;
        anyhow::Ok((report, telemetry))
    })?;
    // The runtime still runs (the exporter needs it) while this thread waits for the flush.
    if let Err(e) = telemetry.shutdown(TELEMETRY_FLUSH_DEADLINE) {
        eprintln!("inferd bench: telemetry flush incomplete: {e}");
    }
    drop(runtime);
    let report = report?;

    print!("{}", report::render_table(&report));
    if let Some(path) = &args.output {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        println!("\nreport written to {}", path.display());
    }
    if let Some(dir) = &args.charts {
        let files = charts::write_charts(&report, dir)?;
        println!(
            "charts written to {} ({} files)",
            dir.display(),
            files.len()
        );
    }
    Ok(report)
}

async fn execute(
    plan: &Plan,
    requests: Vec<PreparedRequest>,
    api_key: Option<&str>,
    tracer: Option<inferd_otel::Tracer>,
    progress: bool,
) -> anyhow::Result<Report> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .context("the API key holds characters an HTTP header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let target = Target::new(plan, client);
    if !plan.skip_model_check {
        check_model(&target, &plan.url).await?;
    }
    let tracing = Tracing::new(tracer, plan.trace_per_stage, &target);
    let runner = Arc::new(Runner::new(target, requests, tracing, plan.seed, progress));
    let mut report = Report::new(plan);

    if let (Some(warmup), Some(first)) = (plan.warmup, plan.stages.first()) {
        let spec = StageSpec {
            name: "warmup".to_owned(),
            load: first.load,
            stop: warmup,
        };
        let run = runner.run_stage(0, &spec).await;
        report.warmup = Some(WarmupReport {
            sent: run.outcomes.len() as u64,
            failed: run.outcomes.iter().filter(|o| o.error.is_some()).count() as u64,
        });
    }
    for (i, spec) in plan.stages.iter().enumerate() {
        let run = runner.run_stage(i + 1, spec).await;
        report.stages.push(StageReport::from_outcomes(
            spec,
            &run.outcomes,
            run.duration.as_secs_f64(),
        ));
    }
    runner.tracing.end();
    Ok(report)
}

/// Fails with a clear message when the server cannot be reached, does not answer
/// `GET /v1/models` as an OpenAI server does, or does not serve `model`.
async fn check_model(target: &Target, base: &str) -> anyhow::Result<()> {
    let url = format!("{base}/v1/models");
    let response = target
        .client
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {base}: {}", error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "GET {url} answered {status}; is {base} an OpenAI-compatible server? \
             (--skip-model-check skips this check)"
        );
    }
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("GET {url} did not answer JSON"))?;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .map(|models| models.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    if !ids.contains(&target.model.as_str()) {
        bail!(
            "model `{}` is not served by {base}; it serves: {}",
            target.model,
            if ids.is_empty() {
                "nothing".to_owned()
            } else {
                ids.join(", ")
            }
        );
    }
    Ok(())
}
