//! What a bench run does: the plan built once from the command line and an optional TOML file
//! (flags win over the file, the file over the defaults), validated with errors that name the
//! bad key and the accepted values.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use inferd_openai::Api;
use serde::{Deserialize, Serialize};

use crate::args::BenchArgs;
use crate::dataset::{DataSpec, LengthSpec, DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS};

/// The endpoints requests can go to, by the name `--api` and the file's `api` take
/// ([`Api::name`]): chat and text completions (embeddings generate no tokens to time).
pub const BENCH_APIS: [Api; 2] = [Api::Chat, Api::Completions];

/// The names of [`BENCH_APIS`], for the error that names what is accepted.
const BENCH_API_NAMES: [&str; 2] = ["chat", "completions"];

/// The endpoint of [`BENCH_APIS`] called `name`.
pub fn bench_api(name: &str) -> Option<Api> {
    BENCH_APIS.into_iter().find(|api| api.name() == name)
}

/// The file's `api`: one of [`BENCH_APIS`], read as an enum of their names (so that a wrong
/// value gets serde's message for an enum).
#[derive(Debug)]
struct FileApi(Api);

impl<'de> Deserialize<'de> for FileApi {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = FileApi;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("enum Api")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<FileApi, A::Error> {
                let (name, variant) = data.variant::<String>()?;
                serde::de::VariantAccess::unit_variant(variant)?;
                bench_api(&name)
                    .map(FileApi)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&name, &BENCH_API_NAMES))
            }
        }
        de.deserialize_enum("Api", &BENCH_API_NAMES, Names)
    }
}

/// How the sends of a rate stage are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced, 1/rate apart.
    Constant,
    /// Exponential gaps with mean 1/rate (a Poisson process).
    Poisson,
}

/// The load of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Load {
    /// Requests are sent on a schedule, whatever the server's pace (open loop).
    Rate {
        /// Requests per second.
        rate: f64,
        /// Spread of the sends.
        arrival: Arrival,
    },
    /// A fixed number of requests are in flight; each answer lets the next one go (closed loop).
    Concurrency {
        /// Requests in flight.
        concurrency: u32,
    },
}

/// When a stage stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// After this long (requests still in flight are waited for).
    Duration(#[serde(with = "secs")] Duration),
    /// After this many requests are sent.
    Requests(u64),
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// One stage of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpec {
    /// Shown in the progress bar, table and report.
    pub name: String,
    /// The load.
    pub load: Load,
    /// When it stops sending.
    pub stop: Stop,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL of the server (no trailing `/` and no `/v1`).
    pub url: String,
    /// Model id sent in each request.
    pub model: String,
    /// Endpoint.
    pub api: Api,
    /// Whether responses stream (SSE).
    pub stream: bool,
    /// `max_tokens` for every request; when unset, the data's output length decides.
    pub max_tokens: Option<u32>,
    /// Send `ignore_eos: true` so outputs run to `max_tokens`.
    pub ignore_eos: bool,
    /// Seed of prompts, lengths and Poisson arrivals.
    pub seed: u64,
    /// Requests before the first stage, not counted (run at the first stage's load).
    pub warmup: Option<Stop>,
    /// Limit for one request, streaming included.
    pub timeout: Duration,
    /// Stages, run one after the other.
    pub stages: Vec<StageSpec>,
    /// Where prompts come from.
    pub data: DataSpec,
    /// One trace per stage instead of one per session.
    pub trace_per_stage: bool,
    /// Skip the `/v1/models` check (for servers that do not implement it).
    pub skip_model_check: bool,
}

/// The TOML file, as written (`docs/bench.md` documents it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    model: Option<String>,
    api: Option<FileApi>,
    stream: Option<bool>,
    max_tokens: Option<u32>,
    ignore_eos: Option<bool>,
    seed: Option<u64>,
    warmup: Option<toml::Value>,
    timeout: Option<String>,
    trace_per_stage: Option<bool>,
    #[serde(default)]
    stages: Vec<FileStage>,
    data: Option<DataSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStage {
    name: Option<String>,
    rate: Option<f64>,
    arrival: Option<Arrival>,
    concurrency: Option<u32>,
    duration: Option<String>,
    requests: Option<u64>,
}

/// Parses `--stages 'rate=2,duration=30s;concurrency=4,requests=50'`: stages separated by `;`,
/// each a comma-separated list of the `[[stages]]` keys.
fn parse_inline_stages(text: &str) -> anyhow::Result<Vec<FileStage>> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, stage)| {
            let mut parsed = FileStage::default();
            for pair in stage.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--stages[{i}]: `{pair}` is not key=value")
                })?;
                let value = value.trim();
                let number = |v: &str| -> anyhow::Result<f64> {
                    v.parse()
                        .map_err(|_| anyhow::anyhow!("--stages[{i}]: {key}=`{v}` is not a number"))
                };
                match key.trim() {
                    "name" => parsed.name = Some(value.to_owned()),
                    "rate" => parsed.rate = Some(number(value)?),
                    "arrival" => {
                        parsed.arrival = Some(match value {
                            "constant" => Arrival::Constant,
                            "poisson" => Arrival::Poisson,
                            _ => bail!("--stages[{i}]: arrival=`{value}` (constant or poisson)"),
                        })
                    }
                    "concurrency" => {
                        parsed.concurrency = Some(value.parse().map_err(|_| {
                            anyhow::anyhow!("--stages[{i}]: concurrency=`{value}` is not a count")
                        })?)
                    }
                    "duration" => parsed.duration = Some(value.to_owned()),
                    "requests" => {
                        parsed.requests = Some(value.parse().map_err(|_| {
                            anyhow::anyhow!("--stages[{i}]: requests=`{value}` is not a count")
                        })?)
                    }
                    other => bail!(
                        "--stages[{i}]: unknown key `{other}` (name, rate, arrival, concurrency, duration, requests)"
                    ),
                }
            }
            Ok(parsed)
        })
        .collect()
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}`: {e}"))
}

/// A warm-up given as a duration (`10s`) or a request count (`5`).
fn parse_warmup(text: &str) -> Result<Stop, String> {
    if let Ok(n) = text.trim().parse::<u64>() {
        return Ok(Stop::Requests(n));
    }
    parse_duration(text).map(Stop::Duration)
}

fn stop_of(
    what: &str,
    duration: Option<&str>,
    requests: Option<u64>,
    default: Option<Stop>,
) -> anyhow::Result<Stop> {
    match (duration, requests) {
        (Some(_), Some(_)) => bail!("{what}: give either a duration or a request count, not both"),
        (Some(d), None) => {
            let d = parse_duration(d).map_err(|e| anyhow::anyhow!("{what}: duration {e}"))?;
            if d.is_zero() {
                bail!("{what}: duration must be greater than 0");
            }
            Ok(Stop::Duration(d))
        }
        (None, Some(0)) => bail!("{what}: requests must be greater than 0"),
        (None, Some(n)) => Ok(Stop::Requests(n)),
        (None, None) => default.ok_or_else(|| {
            anyhow::anyhow!("{what}: give `duration` (e.g. \"30s\") or `requests` (a count)")
        }),
    }
}

fn load_of(
    what: &str,
    rate: Option<f64>,
    arrival: Option<Arrival>,
    concurrency: Option<u32>,
) -> anyhow::Result<Load> {
    match (rate, concurrency) {
        (Some(_), Some(_)) => bail!("{what}: give either a rate or a concurrency, not both"),
        (Some(rate), None) => {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("{what}: rate must be a number of requests per second greater than 0");
            }
            Ok(Load::Rate {
                rate,
                arrival: arrival.unwrap_or(Arrival::Constant),
            })
        }
        (None, Some(0)) => bail!("{what}: concurrency must be at least 1"),
        (None, Some(concurrency)) => {
            if arrival.is_some() {
                bail!("{what}: `arrival` applies to a rate, not to a concurrency");
            }
            Ok(Load::Concurrency { concurrency })
        }
        (None, None) => bail!(
            "{what}: give a rate (requests/s) or a concurrency (requests in flight); \
             on the command line --rate R or --concurrency C"
        ),
    }
}

/// Strips a trailing `/` and `/v1`, so `http://h:8080/v1/` and `http://h:8080` mean the same.
/// `http://` or `https://` with a host.
pub fn normalize_base_url(url: &str) -> anyhow::Result<String> {
    let mut base = url.trim().trim_end_matches('/').to_owned();
    if let Some(stripped) = base.strip_suffix("/v1") {
        base = stripped.to_owned();
    }
    let parsed: http::Uri = base
        .parse()
        .with_context(|| format!("--url `{url}` is not a URL"))?;
    match parsed.scheme_str() {
        Some("http" | "https") if parsed.host().is_some() => Ok(base),
        _ => bail!("--url `{url}` must be an http:// or https:// URL with a host"),
    }
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "config file {} is not valid: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })
}

impl Plan {
    /// Builds the plan from the flags and the `--config` file they name.
    pub fn from_args(args: &BenchArgs) -> anyhow::Result<Plan> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let url = args.url.clone().or(file.url).ok_or_else(|| {
            anyhow::anyhow!("give the server with --url (e.g. --url http://127.0.0.1:8080)")
        })?;
        let url = normalize_base_url(&url)?;
        let model = args.model.clone().or(file.model).ok_or_else(|| {
            anyhow::anyhow!("give the model id with --model (GET /v1/models lists them)")
        })?;

        let cli_stage = args.rate.is_some() || args.concurrency.is_some();
        let inline = match &args.stages {
            Some(text) => parse_inline_stages(text)?,
            None => Vec::new(),
        };
        let stages = if cli_stage {
            if !inline.is_empty() {
                bail!("give either --rate/--concurrency or --stages, not both");
            }
            let load = load_of("command line", args.rate, args.arrival, args.concurrency)?;
            let stop = stop_of(
                "command line",
                args.duration.as_deref(),
                args.requests,
                Some(Stop::Duration(Duration::from_secs(30))),
            )?;
            vec![StageSpec {
                name: "stage-1".to_owned(),
                load,
                stop,
            }]
        } else {
            let (what, listed) = if inline.is_empty() {
                ("stages", &file.stages)
            } else {
                ("--stages", &inline)
            };
            if listed.is_empty() {
                bail!(
                    "nothing to run: give --rate R or --concurrency C (with --duration or --requests), \
                     --stages 'rate=2,duration=30s;concurrency=4,requests=50', or [[stages]] in a --config file"
                );
            }
            if args.duration.is_some() || args.requests.is_some() || args.arrival.is_some() {
                bail!("--duration, --requests and --arrival go with --rate or --concurrency; stages set their own");
            }
            listed
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let what = format!("{what}[{i}]");
                    Ok(StageSpec {
                        name: s.name.clone().unwrap_or_else(|| format!("stage-{}", i + 1)),
                        load: load_of(&what, s.rate, s.arrival, s.concurrency)?,
                        stop: stop_of(&what, s.duration.as_deref(), s.requests, None)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        };

        let warmup = match (&args.warmup, file.warmup) {
            (Some(text), _) => {
                Some(parse_warmup(text).map_err(|e| anyhow::anyhow!("--warmup: {e}"))?)
            }
            (None, Some(toml::Value::Integer(n))) if n >= 0 => Some(Stop::Requests(n as u64)),
            (None, Some(toml::Value::String(text))) => {
                Some(parse_warmup(&text).map_err(|e| anyhow::anyhow!("warmup: {e}"))?)
            }
            (None, Some(other)) => {
                bail!("warmup: `{other}` is neither a duration (\"10s\") nor a request count")
            }
            (None, None) => None,
        }
        .filter(|w| !matches!(w, Stop::Requests(0)) && *w != Stop::Duration(Duration::ZERO));

        let timeout = match (&args.timeout, &file.timeout) {
            (Some(t), _) => parse_duration(t).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?,
            (None, Some(t)) => parse_duration(t).map_err(|e| anyhow::anyhow!("timeout: {e}"))?,
            (None, None) => Duration::from_secs(300),
        };

        let data = match (&args.data, args.input_tokens, args.output_tokens) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                bail!("--data reads prompts from a file; --input-tokens/--output-tokens are for synthetic prompts")
            }
            (Some(path), None, None) => DataSpec::from_path(path, args.data_format)?,
            (None, input, output) if input.is_some() || output.is_some() => {
                let (file_input, file_output) = match file.data {
                    Some(DataSpec::Synthetic {
                        input_tokens,
                        output_tokens,
                        ..
                    }) => (Some(input_tokens), Some(output_tokens)),
                    _ => (None, None),
                };
                DataSpec::Synthetic {
                    input_tokens: input
                        .map(LengthSpec::Fixed)
                        .or(file_input)
                        .unwrap_or(LengthSpec::Fixed(DEFAULT_INPUT_TOKENS)),
                    output_tokens: output
                        .map(LengthSpec::Fixed)
                        .or(file_output)
                        .unwrap_or(LengthSpec::Fixed(DEFAULT_OUTPUT_TOKENS)),
                    prompts: None,
                }
            }
            (None, _, _) => file.data.unwrap_or_else(DataSpec::default_synthetic),
        };
        data.validate()?;

        Ok(Plan {
            url,
            model,
            api: args.api.or(file.api.map(|api| api.0)).unwrap_or(Api::Chat),
            stream: if args.no_stream {
                false
            } else {
                file.stream.unwrap_or(true)
            },
            max_tokens: args.max_tokens.or(file.max_tokens),
            ignore_eos: args.ignore_eos || file.ignore_eos.unwrap_or(false),
            seed: args.seed.or(file.seed).unwrap_or(42),
            warmup,
            timeout,
            stages,
            data,
            trace_per_stage: args.trace_per_stage || file.trace_per_stage.unwrap_or(false),
            skip_model_check: args.skip_model_check,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn base_urls_drop_v1_and_take_http_or_https() {
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080/v1/").expect("http"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base_url("https://api.example/v1").expect("https"),
            "https://api.example"
        );
        assert!(normalize_base_url("ftp://x/v1").is_err());
        assert!(normalize_base_url("localhost:8080").is_err());
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn plan(argv: &[&str]) -> anyhow::Result<Plan> {
        let mut full = vec!["bench"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full)?;
        Plan::from_args(&cli.bench)
    }

    /// `text` in a fresh `.toml` file, removed when dropped.
    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new()
            .prefix("inferd-bench-config-")
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write config");
        file
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn one_stage_from_flags() {
        let p = plan(&[
            "--url",
            "http://127.0.0.1:8080/v1/",
            "--model",
            "m",
            "--rate",
            "2.5",
            "--arrival",
            "poisson",
            "--requests",
            "10",
            "--warmup",
            "3",
        ])
        .expect("plan");
        assert_eq!(p.url, "http://127.0.0.1:8080");
        assert_eq!(p.stages.len(), 1);
        assert_eq!(
            p.stages[0].load,
            Load::Rate {
                rate: 2.5,
                arrival: Arrival::Poisson
            }
        );
        assert_eq!(p.stages[0].stop, Stop::Requests(10));
        assert_eq!(p.warmup, Some(Stop::Requests(3)));
        assert_eq!(p.seed, 42);
        assert!(p.stream);
        assert_eq!(p.api, Api::Chat);
    }

    #[test]
    fn stages_and_data_from_a_file_flags_win() {
        let path = write_config(
            r#"
            url = "http://localhost:9999"
            model = "from-file"
            api = "completions"
            seed = 7
            warmup = "2s"
            max_tokens = 16
            [[stages]]
            rate = 1.0
            duration = "5s"
            [[stages]]
            name = "busy"
            concurrency = 4
            requests = 20
            [data]
            type = "synthetic"
            input_tokens = { type = "uniform", min = 10, max = 20 }
            output_tokens = 8
            "#,
        );
        let p = plan(&[
            "--config",
            path.path().to_str().expect("utf-8"),
            "--model",
            "from-flag",
        ])
        .expect("plan");
        assert_eq!(p.model, "from-flag");
        assert_eq!(p.url, "http://localhost:9999");
        assert_eq!(p.api, Api::Completions);
        assert_eq!(p.seed, 7);
        assert_eq!(p.max_tokens, Some(16));
        assert_eq!(p.warmup, Some(Stop::Duration(Duration::from_secs(2))));
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[0].name, "stage-1");
        assert_eq!(p.stages[1].name, "busy");
        assert_eq!(p.stages[1].load, Load::Concurrency { concurrency: 4 });
        assert!(matches!(p.data, DataSpec::Synthetic { .. }));
    }

    #[test]
    fn inline_stages_from_the_command_line() {
        let p = plan(&[
            "--url",
            "http://h",
            "--model",
            "m",
            "--stages",
            "rate=2,arrival=poisson,duration=30s; name=busy,concurrency=4,requests=50",
        ])
        .expect("plan");
        assert_eq!(p.stages.len(), 2);
        assert_eq!(
            p.stages[0].load,
            Load::Rate {
                rate: 2.0,
                arrival: Arrival::Poisson
            }
        );
        assert_eq!(p.stages[0].stop, Stop::Duration(Duration::from_secs(30)));
        assert_eq!(p.stages[1].name, "busy");
        assert_eq!(p.stages[1].stop, Stop::Requests(50));
        let err = plan(&[
            "--url",
            "http://h",
            "--model",
            "m",
            "--stages",
            "rate=2,speed=3",
        ])
        .expect_err("unknown key");
        assert!(err.to_string().contains("speed"), "{err}");
        let err = plan(&["--url", "http://h", "--model", "m", "--stages", "rate=2"])
            .expect_err("no stop");
        assert!(err.to_string().contains("--stages[0]"), "{err}");
    }

    #[test]
    fn bad_config_names_the_problem() {
        let unknown = write_config("rat = 3\n");
        let err = plan(&[
            "--config",
            unknown.path().to_str().expect("utf-8"),
            "--url",
            "http://h",
            "--model",
            "m",
        ])
        .expect_err("unknown key accepted");
        assert!(err.to_string().contains("rat"), "{err}");

        let both = write_config("[[stages]]\nrate = 1.0\nconcurrency = 2\nrequests = 3\n");
        let err = plan(&[
            "--config",
            both.path().to_str().expect("utf-8"),
            "--url",
            "http://h",
            "--model",
            "m",
        ])
        .expect_err("rate and concurrency accepted");
        assert!(err.to_string().contains("stages[0]"), "{err}");

        let no_stop = write_config("[[stages]]\nrate = 1.0\n");
        let err = plan(&[
            "--config",
            no_stop.path().to_str().expect("utf-8"),
            "--url",
            "http://h",
            "--model",
            "m",
        ])
        .expect_err("stage without stop accepted");
        assert!(err.to_string().contains("duration"), "{err}");

        let err = plan(&["--url", "ftp://h", "--model", "m", "--rate", "1"]).expect_err("ftp");
        assert!(err.to_string().contains("http://"), "{err}");
        let err = plan(&["--url", "http://h", "--model", "m"]).expect_err("no load");
        assert!(err.to_string().contains("--rate"), "{err}");
        let err = plan(&["--url", "http://h", "--model", "m", "--rate", "0"]).expect_err("rate 0");
        assert!(err.to_string().contains("greater than 0"), "{err}");
    }
}
