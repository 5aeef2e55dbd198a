//! End-to-end: the real `inferd bench` binary against the real `inferd serve` with the default
//! model, on 127.0.0.1. Checks the report's counts and consistency, the clear failures on bad
//! input, and that with tracing on the server's SERVER span is a child of the bench's CLIENT span
//! (both exporting to a real OTLP/gRPC receiver).

mod common;
#[path = "../crates/telemetry/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, TempDir};
use serde_json::Value;

const MODEL: &str = "smollm2-135m";

fn scratch(name: &str) -> TempDir {
    TempDir::new(&format!("bench-e2e-{name}"))
}

fn bench(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferd"))
        .arg("bench")
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("INFERD_TELEMETRY")
        .env_remove("OPENAI_API_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("run inferd bench")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    let raw = std::fs::read_to_string(path).expect("report written");
    serde_json::from_str(&raw).expect("report is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

const STATS: [&str; 7] = ["mean", "min", "p50", "p90", "p95", "p99", "max"];

/// Every figure of a streamed stage is present and consistent.
fn check_stage(stage: &Value, expect_sent: Option<u64>, output_per_request: u64) {
    let sent = u(&stage["sent"]);
    if let Some(n) = expect_sent {
        assert_eq!(sent, n, "sent");
    }
    let completed = u(&stage["completed"]);
    let failed = u(&stage["failed"]);
    assert_eq!(completed + failed, sent, "completed + failed = sent");
    assert_eq!(failed, 0, "errors: {}", stage["errors"]);
    assert_eq!(u(&stage["usage_reported"]), completed);
    // ignore_eos holds every output to max_tokens.
    assert_eq!(u(&stage["output_tokens"]), completed * output_per_request);
    assert!(u(&stage["input_tokens"]) >= completed * 16);
    let duration = f(&stage["duration_s"]);
    assert!(duration > 0.0);
    for (tokens, rate) in [
        ("output_tokens", "output_tokens_per_s"),
        ("input_tokens", "input_tokens_per_s"),
    ] {
        let expected = f(&stage[tokens]) / duration;
        assert!(
            (f(&stage[rate]) - expected).abs() <= 1e-6 * expected.max(1.0),
            "{rate} = {tokens} / duration"
        );
    }
    let expected = completed as f64 / duration;
    assert!((f(&stage["request_rate"]) - expected).abs() <= 1e-6 * expected.max(1.0));
    for figure in [
        "ttft",
        "tpot",
        "itl",
        "e2e",
        "schedule_lag",
        "output_tokens_per_request",
    ] {
        for stat in STATS {
            let v = &stage[figure][stat];
            assert!(v.is_number(), "{figure}.{stat} missing: {stage}");
            assert!(f(v) >= 0.0, "{figure}.{stat} negative");
        }
        assert!(f(&stage[figure]["min"]) <= f(&stage[figure]["p50"]));
        assert!(f(&stage[figure]["p50"]) <= f(&stage[figure]["max"]));
    }
    assert_eq!(u(&stage["ttft"]["count"]), completed);
    assert_eq!(u(&stage["e2e"]["count"]), completed);
    // Per request TTFT <= e2e, so every order statistic keeps the order.
    for stat in STATS {
        assert!(
            f(&stage["ttft"][stat]) <= f(&stage["e2e"][stat]),
            "ttft.{stat} > e2e.{stat}"
        );
    }
    // One gap between consecutive text chunks: at most output_tokens - 1 per request. The
    // server sends whole UTF-8 characters, so a token that ends inside a character travels with
    // the next one and a request can have a few chunks fewer than tokens.
    let most = completed * (output_per_request - 1);
    let itl_count = u(&stage["itl"]["count"]);
    assert!(
        itl_count <= most && itl_count * 10 >= most * 9,
        "itl.count {itl_count} not within 90-100% of {most}"
    );
    assert_eq!(u(&stage["finish_reasons"]["length"]), completed);
}

#[test]
fn bench_reports_consistent_figures_for_both_apis_and_compare_reads_them() {
    let server = Server::start(&[]);
    let dir = scratch("figures");
    let chat = dir.join("chat.json");
    let charts = dir.join("charts");
    let out = bench(
        &[
            "--url",
            &server.base,
            "--model",
            MODEL,
            "--concurrency",
            "2",
            "--requests",
            "6",
            "--warmup",
            "2",
            "--input-tokens",
            "16",
            "--output-tokens",
            "8",
            "--ignore-eos",
            "--output",
            chat.to_str().expect("utf-8"),
            "--charts",
            charts.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.status.success(), "bench failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ttft"), "no summary table: {stdout}");
    let report = read_json(&chat);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["api"], "chat");
    assert_eq!(report["warmup"]["sent"], 2);
    assert_eq!(report["stages"].as_array().map(Vec::len), Some(1));
    check_stage(&report["stages"][0], Some(6), 8);
    for chart in [
        "latency-ttft.svg",
        "latency-tpot.svg",
        "throughput-tokens.svg",
    ] {
        let svg = std::fs::read_to_string(charts.join(chart)).expect("chart written");
        assert!(svg.starts_with("<svg"));
    }

    // Text completions at a constant rate, for a duration.
    let completions = dir.join("completions.json");
    let out = bench(
        &[
            "--url",
            &format!("{}/v1", server.base),
            "--model",
            MODEL,
            "--api",
            "completions",
            "--rate",
            "4",
            "--duration",
            "2s",
            "--input-tokens",
            "16",
            "--output-tokens",
            "4",
            "--ignore-eos",
            "--output",
            completions.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.status.success(), "bench failed: {}", text(&out.stderr));
    let report = read_json(&completions);
    assert_eq!(report["api"], "completions");
    let stage = &report["stages"][0];
    assert_eq!(stage["load"]["type"], "rate");
    // 4/s for 2 s: sends at 0, 0.25, ..., 1.75 s.
    check_stage(stage, Some(8), 4);
    // The generator kept its schedule (bounds loose enough for a busy 2-core CI machine).
    assert!(
        f(&stage["schedule_lag"]["mean"]) < 0.1 && f(&stage["schedule_lag"]["max"]) < 1.0,
        "late sends: {}",
        stage["schedule_lag"]
    );

    let out = Command::new(env!("CARGO_BIN_EXE_inferd"))
        .args(["bench", "compare"])
        .arg(&chat)
        .arg(&completions)
        .output()
        .expect("compare");
    assert!(
        out.status.success(),
        "compare failed: {}",
        text(&out.stderr)
    );
    let diff = text(&out.stdout);
    for figure in [
        "ttft.p50",
        "tpot.p99",
        "e2e.mean",
        "output_tokens_per_s",
        "sent",
    ] {
        assert!(diff.contains(figure), "compare lacks {figure}: {diff}");
    }
    assert!(diff.contains('%'), "{diff}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn server_errors_are_counted_by_kind_not_fatal() {
    let server = Server::start(&[]);
    let dir = scratch("errors");
    let report_path = dir.join("report.json");
    // The default model's context is far smaller: the server answers 400 to every request.
    let out = bench(
        &[
            "--url",
            &server.base,
            "--model",
            MODEL,
            "--concurrency",
            "2",
            "--requests",
            "4",
            "--input-tokens",
            "8",
            "--max-tokens",
            "1000000",
            "--output",
            report_path.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.status.success(), "bench failed: {}", text(&out.stderr));
    let report = read_json(&report_path);
    let stage = &report["stages"][0];
    assert_eq!(u(&stage["sent"]), 4);
    assert_eq!(u(&stage["failed"]), 4);
    assert_eq!(u(&stage["completed"]), 0);
    assert_eq!(u(&stage["errors"]["http_400"]["count"]), 4);
    assert!(stage["errors"]["http_400"]["example"]
        .as_str()
        .is_some_and(|m| m.contains("max_tokens")));
    assert!(stage["ttft"].is_null());
    assert!(text(&out.stdout).contains("http_400"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_with_api_keys_is_benchmarked_with_the_key_and_refuses_without_it() {
    let server = Server::start(&["--api-key", "sk-bench-key"]);
    let dir = scratch("keys");
    let report_path = dir.join("report.json");
    let args = [
        "--url",
        &server.base,
        "--model",
        MODEL,
        "--concurrency",
        "1",
        "--requests",
        "2",
        "--input-tokens",
        "8",
        "--max-tokens",
        "2",
        "--output",
        report_path.to_str().expect("utf-8"),
    ];
    let out = bench(&args, &[("OPENAI_API_KEY", "sk-bench-key")]);
    assert!(out.status.success(), "bench failed: {}", text(&out.stderr));
    let written = std::fs::read_to_string(&report_path).expect("report");
    assert!(
        !written.contains("sk-bench-key"),
        "the key is not in the report"
    );
    let stage = &read_json(&report_path)["stages"][0];
    assert_eq!(u(&stage["completed"]), 2, "{stage}");

    let out = bench(&args, &[]);
    assert!(!out.status.success(), "refused without the key");
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn prompts_from_jsonl_and_sharegpt_files_are_sent() {
    let server = Server::start(&[]);
    let dir = scratch("files");
    let jsonl = dir.join("prompts.jsonl");
    std::fs::write(
        &jsonl,
        "{\"prompt\": \"Name a colour.\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"Say hi.\"}], \"max_tokens\": 2}\n",
    )
    .expect("write");
    let sharegpt = dir.join("sharegpt.json");
    std::fs::write(
        &sharegpt,
        r#"[{"id": "x", "conversations": [{"from": "human", "value": "What is Rust?"}, {"from": "gpt", "value": "A language."}]}]"#,
    )
    .expect("write");
    for (data, api) in [(&jsonl, "chat"), (&sharegpt, "completions")] {
        let report_path = dir.join("report.json");
        let out = bench(
            &[
                "--url",
                &server.base,
                "--model",
                MODEL,
                "--api",
                api,
                "--concurrency",
                "1",
                "--requests",
                "3",
                "--max-tokens",
                "3",
                "--ignore-eos",
                "--data",
                data.to_str().expect("utf-8"),
                "--output",
                report_path.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert!(out.status.success(), "bench failed: {}", text(&out.stderr));
        let report = read_json(&report_path);
        let stage = &report["stages"][0];
        assert_eq!(u(&stage["completed"]), 3, "{stage}");
        // --max-tokens overrides the data's lengths; ignore_eos holds them.
        assert_eq!(u(&stage["output_tokens"]), 9, "{stage}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    // Nothing listens on port 1.
    let out = bench(
        &[
            "--url",
            "http://127.0.0.1:1",
            "--model",
            MODEL,
            "--rate",
            "1",
            "--requests",
            "1",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach the server at http://127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );

    let dir = scratch("bad-input");
    let data = dir.join("prompts.jsonl");
    std::fs::write(&data, "{\"prompt\": \"fine\"}\n{\"prompt\": \n").expect("write");
    let out = bench(
        &[
            "--url",
            "http://127.0.0.1:1",
            "--model",
            MODEL,
            "--rate",
            "1",
            "--data",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("prompts.jsonl") && stderr.contains("line 2"),
        "{stderr}"
    );

    let config = dir.join("bench.toml");
    std::fs::write(&config, "[[stages]]\nrate = \"fast\"\nduration = \"5s\"\n").expect("write");
    let out = bench(
        &[
            "--url",
            "http://127.0.0.1:1",
            "--model",
            MODEL,
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bench.toml") && stderr.contains("rate"),
        "{stderr}"
    );

    let out = bench(&["--url", "http://127.0.0.1:1", "--model", MODEL], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--rate"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn wrong_model_is_refused_naming_the_served_ones() {
    let server = Server::start(&[]);
    let out = bench(
        &[
            "--url",
            &server.base,
            "--model",
            "no-such-model",
            "--rate",
            "1",
            "--requests",
            "1",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("model `no-such-model` is not served") && stderr.contains(MODEL),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_is_a_child_of_the_bench_client_span() {
    let (endpoint, received) = support::grpc_receiver().await;
    let otel_env = |service: &'static str, endpoint: String| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("OTEL_LOGS_EXPORTER", "none".to_owned()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
        ]
    };
    let server_env = otel_env("inferd-e2e", endpoint.clone());
    let server = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = server_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_env(&["--telemetry", "otlp"], &env)
    })
    .await
    .expect("server start");
    let base = server.base.clone();
    let bench_env = otel_env("inferd-bench-e2e", endpoint);
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = bench_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bench(
            &[
                "--url",
                &base,
                "--model",
                MODEL,
                "--concurrency",
                "1",
                "--requests",
                "2",
                "--input-tokens",
                "8",
                "--output-tokens",
                "3",
                "--ignore-eos",
            ],
            &env,
        )
    })
    .await
    .expect("bench");
    assert!(out.status.success(), "bench failed: {}", text(&out.stderr));

    // SpanKind: INTERNAL = 1, SERVER = 2, CLIENT = 3.
    let mut pairs = Vec::new();
    for _ in 0..100 {
        let all = received.all();
        let clients: Vec<_> = all
            .iter()
            .filter(|s| s.span.kind == 3 && s.span.name == format!("chat {MODEL}"))
            .collect();
        pairs = clients
            .iter()
            .filter_map(|c| {
                all.iter()
                    .find(|s| {
                        s.span.kind == 2
                            && s.trace_id() == c.trace_id()
                            && s.parent_span_id() == c.span_id()
                    })
                    .map(|s| ((*c).clone(), s.clone()))
            })
            .collect();
        if pairs.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pairs.len(), 2, "spans received: {:?}", received.names());
    let all = received.all();
    for (client, server_span) in &pairs {
        assert_eq!(server_span.span.name, "POST /v1/chat/completions");
        assert_eq!(
            client.resource_attr("service.name").as_deref(),
            Some("inferd-bench-e2e")
        );
        assert_eq!(
            server_span.resource_attr("service.name").as_deref(),
            Some("inferd-e2e")
        );
        assert_eq!(
            client.attr("gen_ai.operation.name").as_deref(),
            Some("chat")
        );
        assert_eq!(client.attr("gen_ai.request.model").as_deref(), Some(MODEL));
        assert_eq!(client.attr("gen_ai.response.model").as_deref(), Some(MODEL));
        assert_eq!(
            client.attr("gen_ai.usage.output_tokens").as_deref(),
            Some("3")
        );
        assert_eq!(client.attr("server.address").as_deref(), Some("127.0.0.1"));
        assert!(client.attr("server.port").is_some());
        assert!(client
            .attr("gen_ai.response.finish_reasons")
            .is_some_and(|r| r.contains("length")));
        for timing in [
            "gen_ai.response.time_to_first_chunk",
            "inferd.time_per_output_token",
            "gen_ai.latency.e2e",
        ] {
            assert!(
                client.attr(timing).is_some(),
                "{timing} missing on the client span"
            );
        }
        // The request hangs under the stage span, under the session's root `bench` span.
        let stage = all
            .iter()
            .find(|s| s.span_id() == client.parent_span_id())
            .expect("stage span");
        assert!(
            stage.span.name.starts_with("bench.stage"),
            "{}",
            stage.span.name
        );
        let root = all
            .iter()
            .find(|s| s.span_id() == stage.parent_span_id())
            .expect("bench span");
        assert_eq!(root.span.name, "bench");
        assert!(root.span.parent_span_id.is_empty());
    }
    assert_eq!(
        pairs[0].0.trace_id(),
        pairs[1].0.trace_id(),
        "one trace per session"
    );
}
