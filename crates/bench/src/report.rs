//! The figures of a run: per-stage counts, rates and latency summaries, as the JSON report
//! (schema in docs/bench.md) and as the summary table printed at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::client::Outcome;
use crate::config::{Load, Plan, StageSpec, Stop};
use crate::stats::Summary;

/// Version of the report's layout; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// `inferd-bench`.
    pub tool: String,
    /// Version of the tool.
    pub tool_version: String,
    /// Start of the run, seconds since the Unix epoch.
    pub started_at_unix_s: f64,
    /// Base URL of the server.
    pub url: String,
    /// Model id sent.
    pub model: String,
    /// `chat` or `completions`.
    pub api: String,
    /// Whether responses streamed.
    pub stream: bool,
    /// Seed of the run.
    pub seed: u64,
    /// Whether `ignore_eos` was sent.
    pub ignore_eos: bool,
    /// The warm-up's counts, when there was one (not part of any stage's figures).
    pub warmup: Option<WarmupReport>,
    /// The stages, in order.
    pub stages: Vec<StageReport>,
}

impl Report {
    /// A report of `stages` with fixed run facts (unit tests of the report's readers).
    #[cfg(test)]
    pub(crate) fn fixture(stages: Vec<StageReport>) -> Self {
        Self {
            schema_version: 1,
            tool: "inferd-bench".into(),
            tool_version: "0".into(),
            started_at_unix_s: 0.0,
            url: "http://h".into(),
            model: "m".into(),
            api: "chat".into(),
            stream: true,
            seed: 1,
            ignore_eos: false,
            warmup: None,
            stages,
        }
    }
}

/// What the warm-up did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupReport {
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed.
    pub failed: u64,
}

/// Failures of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// How many.
    pub count: u64,
    /// The first one's message.
    pub example: String,
}

/// One stage's figures. Times are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// Name of the stage.
    pub name: String,
    /// Its load.
    pub load: Load,
    /// When it stopped sending.
    pub stop: Stop,
    /// Wall time from the stage's first send to its last response.
    pub duration_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered in full.
    pub completed: u64,
    /// Requests that failed (`sent = completed + failed`).
    pub failed: u64,
    /// Failures by kind (`connect`, `timeout`, `http_503`, `stream`, `incomplete`, ...).
    pub errors: BTreeMap<String, ErrorCount>,
    /// Completed requests per second of `duration_s`.
    pub request_rate: f64,
    /// Input tokens of completed requests.
    pub input_tokens: u64,
    /// Output tokens of completed requests.
    pub output_tokens: u64,
    /// `input_tokens / duration_s`.
    pub input_tokens_per_s: f64,
    /// `output_tokens / duration_s`.
    pub output_tokens_per_s: f64,
    /// Completed requests whose token counts came from the server's usage (the rest were
    /// counted by the client).
    pub usage_reported: u64,
    /// Finish reasons of completed requests.
    pub finish_reasons: BTreeMap<String, u64>,
    /// Time to first token per completed request (streaming only).
    pub ttft: Option<Summary>,
    /// Time per output token after the first, per completed request with 2+ output tokens.
    pub tpot: Option<Summary>,
    /// Gap between consecutive text chunks, over all chunks of completed requests.
    pub itl: Option<Summary>,
    /// Send to last byte, per completed request.
    pub e2e: Option<Summary>,
    /// Output tokens per completed request.
    pub output_tokens_per_request: Option<Summary>,
    /// How late each send was against the schedule (all requests).
    pub schedule_lag: Option<Summary>,
}

impl StageReport {
    /// The figures of `outcomes`, collected over `duration_s`.
    pub fn from_outcomes(spec: &StageSpec, outcomes: &[Outcome], duration_s: f64) -> StageReport {
        let mut errors: BTreeMap<String, ErrorCount> = BTreeMap::new();
        let mut finish_reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut ttft = Vec::new();
        let mut tpot = Vec::new();
        let mut itl = Vec::new();
        let mut e2e = Vec::new();
        let mut out_per_request = Vec::new();
        let mut lag = Vec::with_capacity(outcomes.len());
        let (mut input_tokens, mut output_tokens, mut usage_reported, mut completed) =
            (0u64, 0u64, 0u64, 0u64);
        for o in outcomes {
            lag.push(o.schedule_lag);
            if let Some(kind) = &o.error {
                let entry = errors.entry(kind.clone()).or_insert_with(|| ErrorCount {
                    count: 0,
                    example: o.error_message.clone().unwrap_or_default(),
                });
                entry.count += 1;
                continue;
            }
            completed += 1;
            input_tokens += o.input_tokens;
            output_tokens += o.output_tokens;
            usage_reported += u64::from(o.usage_reported);
            if let Some(reason) = &o.finish_reason {
                *finish_reasons.entry(reason.clone()).or_default() += 1;
            }
            ttft.extend(o.ttft);
            tpot.extend(o.tpot());
            itl.extend_from_slice(&o.itl);
            e2e.push(o.e2e);
            out_per_request.push(o.output_tokens as f64);
        }
        let sent = outcomes.len() as u64;
        let per_s = |n: f64| {
            if duration_s > 0.0 {
                n / duration_s
            } else {
                0.0
            }
        };
        StageReport {
            name: spec.name.clone(),
            load: spec.load,
            stop: spec.stop,
            duration_s,
            sent,
            completed,
            failed: sent - completed,
            errors,
            request_rate: per_s(completed as f64),
            input_tokens,
            output_tokens,
            input_tokens_per_s: per_s(input_tokens as f64),
            output_tokens_per_s: per_s(output_tokens as f64),
            usage_reported,
            finish_reasons,
            ttft: Summary::of(&ttft),
            tpot: Summary::of(&tpot),
            itl: Summary::of(&itl),
            e2e: Summary::of(&e2e),
            output_tokens_per_request: Summary::of(&out_per_request),
            schedule_lag: Summary::of(&lag),
        }
    }

    /// The latency summaries by name, in display order.
    pub fn latencies(&self) -> [(&'static str, Option<&Summary>); 5] {
        [
            ("ttft", self.ttft.as_ref()),
            ("tpot", self.tpot.as_ref()),
            ("itl", self.itl.as_ref()),
            ("e2e", self.e2e.as_ref()),
            ("schedule_lag", self.schedule_lag.as_ref()),
        ]
    }

    /// The scalar figures by name.
    pub fn scalars(&self) -> [(&'static str, f64); 9] {
        [
            ("sent", self.sent as f64),
            ("completed", self.completed as f64),
            ("failed", self.failed as f64),
            ("duration_s", self.duration_s),
            ("request_rate", self.request_rate),
            ("input_tokens", self.input_tokens as f64),
            ("output_tokens", self.output_tokens as f64),
            ("input_tokens_per_s", self.input_tokens_per_s),
            ("output_tokens_per_s", self.output_tokens_per_s),
        ]
    }
}

impl Report {
    /// An empty report for `plan`, started now.
    pub fn new(plan: &Plan) -> Report {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Report {
            schema_version: SCHEMA_VERSION,
            tool: "inferd-bench".to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_unix_s: started,
            url: plan.url.clone(),
            model: plan.model.clone(),
            api: plan.api.name().to_owned(),
            stream: plan.stream,
            seed: plan.seed,
            ignore_eos: plan.ignore_eos,
            warmup: None,
            stages: Vec::new(),
        }
    }
}

/// Describes a load in a few characters (`rate 2/s poisson`, `concurrency 4`).
pub fn describe_load(load: &Load) -> String {
    match load {
        Load::Rate { rate, arrival } => {
            let arrival = match arrival {
                crate::config::Arrival::Constant => "",
                crate::config::Arrival::Poisson => " poisson",
            };
            format!("rate {rate}/s{arrival}")
        }
        Load::Concurrency { concurrency } => format!("concurrency {concurrency}"),
    }
}

fn ms(summary: Option<&Summary>, stat: &str) -> String {
    summary
        .and_then(|s| s.get(stat))
        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}", v * 1000.0))
}

/// The summary table printed at the end of a run.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    for stage in &report.stages {
        let _ = writeln!(
            out,
            "\nstage {} ({}): {:.1}s, sent {}, completed {}, failed {}",
            stage.name,
            describe_load(&stage.load),
            stage.duration_s,
            stage.sent,
            stage.completed,
            stage.failed
        );
        for (kind, e) in &stage.errors {
            let _ = writeln!(out, "  errors {kind}: {} (e.g. {})", e.count, e.example);
        }
        let _ = writeln!(
            out,
            "  throughput: {:.2} req/s, input {:.1} tok/s, output {:.1} tok/s (tokens {} in, {} out; usage from server for {}/{})",
            stage.request_rate,
            stage.input_tokens_per_s,
            stage.output_tokens_per_s,
            stage.input_tokens,
            stage.output_tokens,
            stage.usage_reported,
            stage.completed
        );
        let _ = writeln!(
            out,
            "  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "(ms)", "mean", "min", "p50", "p90", "p95", "p99", "max"
        );
        for (name, summary) in stage.latencies() {
            let mut row = format!("  {name:<14}");
            for stat in Summary::STATS {
                let _ = write!(row, "{:>9}", ms(summary, stat));
            }
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> StageSpec {
        StageSpec {
            name: "s".into(),
            load: Load::Concurrency { concurrency: 2 },
            stop: Stop::Requests(4),
        }
    }

    fn ok(ttft: f64, e2e: f64, out: u64) -> Outcome {
        Outcome {
            ttft: Some(ttft),
            e2e,
            itl: vec![(e2e - ttft) / (out - 1) as f64; (out - 1) as usize],
            input_tokens: 10,
            output_tokens: out,
            usage_reported: true,
            finish_reason: Some("length".into()),
            ..Outcome::default()
        }
    }

    #[test]
    fn stage_figures_add_up() {
        let failed = Outcome {
            error: Some("http_503".into()),
            error_message: Some("queue full".into()),
            e2e: 0.01,
            ..Outcome::default()
        };
        let outcomes = vec![ok(0.1, 1.1, 11), ok(0.3, 2.3, 21), failed.clone(), failed];
        let r = StageReport::from_outcomes(&spec(), &outcomes, 4.0);
        assert_eq!((r.sent, r.completed, r.failed), (4, 2, 2));
        assert_eq!(r.errors["http_503"].count, 2);
        assert_eq!(r.errors["http_503"].example, "queue full");
        assert_eq!(r.output_tokens, 32);
        assert_eq!(r.input_tokens, 20);
        assert!((r.output_tokens_per_s - 8.0).abs() < 1e-9);
        assert!((r.request_rate - 0.5).abs() < 1e-9);
        let ttft = r.ttft.expect("ttft");
        assert!((ttft.mean - 0.2).abs() < 1e-9);
        let tpot = r.tpot.expect("tpot");
        assert!((tpot.min - 0.1).abs() < 1e-9 && (tpot.max - 0.1).abs() < 1e-9);
        assert_eq!(r.itl.expect("itl").count, 30);
        assert_eq!(r.e2e.expect("e2e").count, 2);
        assert_eq!(r.schedule_lag.expect("lag").count, 4);
        assert_eq!(r.finish_reasons["length"], 2);
    }

    #[test]
    fn report_round_trips_through_json_with_documented_names() {
        let plan_args = crate::args::BenchArgs {
            url: Some("http://h:1".into()),
            model: Some("m".into()),
            concurrency: Some(2),
            requests: Some(4),
            ..Default::default()
        };
        let plan = Plan::from_args(&plan_args).expect("plan");
        let mut report = Report::new(&plan);
        report.stages.push(StageReport::from_outcomes(
            &spec(),
            &[ok(0.1, 1.1, 11)],
            1.0,
        ));
        let text = serde_json::to_string_pretty(&report).expect("json");
        let value: serde_json::Value = serde_json::from_str(&text).expect("parse");
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["stages"][0]["load"]["type"], "concurrency");
        assert_eq!(value["stages"][0]["stop"]["requests"], 4);
        for key in ["ttft", "tpot", "itl", "e2e", "schedule_lag"] {
            for stat in Summary::STATS {
                assert!(
                    value["stages"][0][key][stat].is_number(),
                    "{key}.{stat} missing"
                );
            }
        }
        let back: Report = serde_json::from_str(&text).expect("read back");
        assert_eq!(back.stages[0].completed, report.stages[0].completed);
        assert_eq!(back.stages[0].stop, report.stages[0].stop);
        let (a, b) = (back.stages[0].itl, report.stages[0].itl);
        let (Some(a), Some(b)) = (a, b) else {
            panic!("itl lost")
        };
        assert!((a.mean - b.mean).abs() < 1e-12);
        let table = render_table(&report);
        assert!(table.contains("ttft"));
        assert!(table.contains("concurrency 2"));
    }
}
