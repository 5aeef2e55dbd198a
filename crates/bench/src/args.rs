//! The `inferd bench` command line.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use inferd_openai::Api;
use inferd_telemetry::TelemetryArgs;

use crate::config::{bench_api, Arrival, BENCH_APIS};
use crate::dataset::DataFormat;

const EXAMPLES: &str = "\
Examples:
  inferd bench --url http://127.0.0.1:8080 --model smollm2-135m --rate 2 --duration 30s
  inferd bench --url http://127.0.0.1:8080 --model smollm2-135m --concurrency 4 --requests 100 \\
               --input-tokens 256 --output-tokens 64 --ignore-eos --output report.json
  inferd bench --url http://127.0.0.1:8080 --model smollm2-135m --config bench.toml --charts charts/
  inferd bench compare before.json after.json

Tracing is off unless asked for: --trace (console, or OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is
set), --telemetry otlp|console, or OTEL_EXPORTER_OTLP_ENDPOINT alone. Each request is a CLIENT
span whose traceparent the server joins. docs/bench.md documents the config file and the report.";

/// `inferd bench`: run a load test, or compare two reports.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = EXAMPLES)]
pub struct Args {
    /// `compare`, or nothing to run a load test.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// The load test's flags.
    #[command(flatten)]
    pub run: BenchArgs,
}

/// Subcommands of `inferd bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Print the differences between two JSON reports, per stage and figure.
    Compare(CompareArgs),
}

/// `inferd bench compare A.json B.json`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline report.
    pub baseline: PathBuf,
    /// The report compared with it.
    pub candidate: PathBuf,
}

/// Flags of a load test. Flags win over the `--config` file.
#[derive(Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080 (a trailing /v1 is
    /// accepted).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Model id to send (checked against GET /v1/models first).
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// API key sent as `Authorization: Bearer KEY` (inferd --api-key, vLLM --api-key,
    /// OpenAI). Never written to the report.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// TOML file with stages, data and options (docs/bench.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Endpoint: chat (/v1/chat/completions) or completions (/v1/completions). Default chat.
    #[arg(long, value_parser = api_parser())]
    pub api: Option<Api>,
    /// Ask for whole responses instead of SSE streams (no TTFT or inter-token figures then).
    #[arg(long)]
    pub no_stream: bool,
    /// One stage at this many requests per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Spread of the sends at --rate: constant or poisson. Default constant.
    #[arg(long, value_enum)]
    pub arrival: Option<Arrival>,
    /// One stage with this many requests in flight.
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,
    /// Several stages, `;`-separated, each with the config file's stage keys:
    /// 'rate=2,duration=30s;concurrency=4,requests=50' (name, rate, arrival, concurrency,
    /// duration, requests).
    #[arg(long, value_name = "SPEC")]
    pub stages: Option<String>,
    /// How long the stage sends, e.g. 30s, 2m (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// How many requests the stage sends (instead of --duration).
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Warm-up before the first stage, not counted: a duration (10s) or a request count (5).
    #[arg(long, value_name = "DURATION|N")]
    pub warmup: Option<String>,
    /// Synthetic prompts of this many input tokens (default 128).
    #[arg(long, value_name = "N")]
    pub input_tokens: Option<u32>,
    /// Synthetic prompts ask for this many output tokens (default 64).
    #[arg(long, value_name = "N")]
    pub output_tokens: Option<u32>,
    /// Prompts from a file: JSONL (one {"prompt"} or {"messages"} per line) or ShareGPT JSON.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Format of --data when its name does not tell (.jsonl, .json).
    #[arg(long, value_enum)]
    pub data_format: Option<DataFormat>,
    /// max_tokens for every request (overrides the data's output lengths).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Send ignore_eos: true, so each output runs to max_tokens (servers that support it).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Seed of prompts, lengths and Poisson arrivals (default 42): the same seed, the same run.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Time limit of one request, e.g. 120s (default 300s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Write the JSON report to this file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write SVG charts (latency percentiles and throughput per stage) into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Trace every request (console exporter, or OTLP when an endpoint is set).
    #[arg(long)]
    pub trace: bool,
    /// One trace per stage (a stage span over its requests) instead of one per session.
    #[arg(long)]
    pub trace_per_stage: bool,
    /// No progress bar (it is off anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Do not check the model against GET /v1/models first.
    #[arg(long)]
    pub skip_model_check: bool,
    /// Telemetry settings, as for `inferd serve`.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// `--api`: one of [`BENCH_APIS`] by name, each shown with its path and prompt field.
fn api_parser() -> impl TypedValueParser<Value = Api> {
    let values = BENCH_APIS.map(|api| {
        PossibleValue::new(api.name()).help(format!(
            "`POST {}` (`{}`)",
            api.path(),
            api.prompt_param()
        ))
    });
    PossibleValuesParser::new(values).try_map(|name| bench_api(&name).ok_or("not a bench API"))
}
