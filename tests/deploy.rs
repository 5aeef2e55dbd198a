//! deploy/ checked against the real thing: Prometheus (Debian's `prometheus`) scrapes a live
//! inferd and a gateway in front of it, both under traffic, with deploy/prometheus/alerts.yml
//! loaded; every PromQL expression of the Grafana dashboards must answer with data and every
//! alert expression must parse and name metrics Prometheus has. promtool checks the config and
//! rules and runs the rules' unit tests; scripts/check_deploy.py validates the Kubernetes
//! manifests (kubernetes-validate), the compose file, the collector configuration and the
//! Grafana provisioning. In CI (env CI set) a missing tool fails; elsewhere it is reported and
//! the test skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{self, Prometheus};
use common::{client, Server, TempDir};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// Runs `program args`; `None` when the program is not installed (outside CI).
fn run(program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
    {
        Ok(output) => Some(output),
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "{program} is required in CI (scripts/install-deps.sh installs it): {e}"
            );
            eprintln!("{program} not found ({e}); skipping");
            None
        }
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_and_rules_and_the_rule_unit_tests_pass() {
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
        ["test", "rules", "deploy/prometheus/alerts_test.yml"],
    ] {
        let Some(output) = run("promtool", &args) else {
            return;
        };
        assert_success(&format!("promtool {}", args.join(" ")), &output);
    }
}

#[test]
fn manifests_compose_file_collector_config_and_grafana_provisioning_validate() {
    let install = Command::new("scripts/install-deploy-tools.sh")
        .current_dir(repo())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/install-deploy-tools.sh");
    if !install.status.success() {
        assert!(
            std::env::var("CI").is_err(),
            "scripts/install-deploy-tools.sh failed in CI"
        );
        eprintln!("kubernetes-validate and PyYAML could not be installed; skipping");
        return;
    }
    let python = String::from_utf8_lossy(&install.stdout).trim().to_owned();
    let output = Command::new(&python)
        .arg("scripts/check_deploy.py")
        .arg(repo())
        .current_dir(repo())
        .output()
        .expect("run scripts/check_deploy.py");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert_success("scripts/check_deploy.py", &output);
}

/// The alert names of alerts.yml and the runbook anchor each links to.
fn alert_runbooks() -> BTreeMap<String, String> {
    let mut runbooks = BTreeMap::new();
    let mut current = None;
    for line in read("deploy/prometheus/alerts.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert: ") {
            current = Some(name.to_owned());
        } else if let Some(url) = line.strip_prefix("runbook_url: ") {
            let name = current.take().expect("runbook_url outside an alert");
            runbooks.insert(name, url.trim_matches('"').to_owned());
        }
    }
    runbooks
}

/// GitHub's anchor of a Markdown heading: lowercase, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_links_to_its_section_of_the_operations_guide() {
    let runbooks = alert_runbooks();
    assert_eq!(runbooks.len(), 8, "{runbooks:?}");
    let anchors: BTreeSet<String> = read("docs/operations.md")
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    for (alert, url) in runbooks {
        let target = url
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook {url} is not in docs/operations.md"));
        assert_eq!(target, alert.to_lowercase(), "{alert}: runbook anchor");
        assert!(
            anchors.contains(target),
            "{alert}: docs/operations.md has no heading #{target}"
        );
    }
}

/// GETs `path` of the Prometheus API; `None` while Prometheus is not answering yet. A
/// query Prometheus refuses (status `error`) fails the test, naming it.
async fn api(prometheus: &Prometheus, path: &str, params: &[(&str, &str)]) -> Option<Value> {
    let url = reqwest::Url::parse_with_params(&format!("{}{path}", prometheus.base), params)
        .expect("url");
    let body: Value = client().get(url).send().await.ok()?.json().await.ok()?;
    assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
    Some(body["data"].clone())
}

async fn query(prometheus: &Prometheus, promql: &str) -> Option<Vec<Value>> {
    let data = api(prometheus, "/api/v1/query", &[("query", promql)]).await?;
    Some(data["result"].as_array().cloned().unwrap_or_default())
}

async fn chat(base: &str, model: &str) -> u16 {
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": model, "max_tokens": 4, "ignore_eos": true, "stream": true,
                      "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    r.text().await.expect("body");
    status
}

/// One round of traffic: a streamed chat through the gateway and one straight to the replica,
/// and a chat for a model nobody serves (404).
async fn traffic(back: &Server, front: &Server) {
    assert_eq!(chat(&front.base, "smollm2-135m").await, 200);
    assert_eq!(chat(&back.base, "smollm2-135m").await, 200);
    assert_eq!(chat(&back.base, "no-such-model").await, 404);
}

/// The gateway of deploy/k8s/gateway, its replicas' URLs pointed at `back`; exporting over
/// OTLP to a port nobody listens on, so the exporter's health metric exists.
fn start_gateway(back: &Server, dir: &Path) -> Server {
    let deployed = read("deploy/k8s/gateway/inferd-gateway.toml");
    let mut config = deployed.clone();
    for i in 0..3 {
        config = config.replace(
            &format!("http://inferd-replica-{i}.inferd-replica:8080"),
            &back.base,
        );
    }
    assert_eq!(
        config.matches(&back.base).count(),
        3,
        "inferd-gateway.toml should list replicas 0 to 2:\n{deployed}"
    );
    std::fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join("inferd-gateway.toml");
    std::fs::write(&path, config).expect("write config");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let endpoint = format!("http://{dead}");
    let path = path.display().to_string();
    let args = [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--config",
        &path,
        "--telemetry",
        "otlp",
    ];
    Server::start_with_env(
        &args,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
        true,
    )
}

/// A pair of names: (panel, PromQL expression) or (metric, label).
type Labelled = (String, String);

/// Every `expr` of the dashboards' targets, with Grafana's variables replaced by what the
/// dashboards' defaults mean (every model, a rate window several scrapes wide); and the
/// `label_values(metric, label)` queries of their variables.
fn dashboard_queries() -> (Vec<Labelled>, Vec<Labelled>) {
    let mut exprs = Vec::new();
    let mut variables = Vec::new();
    let dir = repo().join("deploy/grafana/dashboards");
    for entry in std::fs::read_dir(&dir).expect("dashboards") {
        let path = entry.expect("entry").path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut panels: Vec<&Value> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                let raw = target["expr"].as_str().expect("expr");
                let expr = raw
                    .replace("$__rate_interval", "1m")
                    .replace("$model", ".*");
                assert!(!expr.contains('$'), "{name}: unknown variable in {raw}");
                exprs.push((format!("{name}: {}", panel["title"]), expr));
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let definition = variable["definition"].as_str().expect("definition");
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: variable query {definition}"));
            let (metric, label) = inner.split_once(',').expect("label_values(metric, label)");
            variables.push((metric.trim().to_owned(), label.trim().to_owned()));
        }
    }
    assert!(exprs.len() > 20, "{exprs:?}");
    (exprs, variables)
}

/// The metric names a PromQL expression selects: identifiers left once strings, label
/// matchers, ranges, grouping labels, function calls and keywords are set aside.
fn metric_names(promql: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 12] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let mut stripped = String::new();
    let mut closing = None;
    for c in promql.chars() {
        match (closing, c) {
            (Some(end), c) if c == end => closing = None,
            (Some(_), _) => {}
            (None, '"') => closing = Some('"'),
            (None, '{') => closing = Some('}'),
            (None, '[') => closing = Some(']'),
            (None, c) => stripped.push(c),
        }
    }
    let chars: Vec<char> = stripped.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if AGGREGATIONS.contains(&word.as_str()) {
                // `sum by (x) (…)`: the operator, not a metric, whatever follows it.
            } else if KEYWORDS.contains(&word.as_str()) {
                skip_group = [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word.as_str());
            } else if next != Some(&'(') {
                names.insert(word);
            }
        } else if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
        } else if c.is_ascii_digit() || c == '.' {
            while i + 1 < chars.len()
                && (chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '.')
            {
                i += 1;
            }
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        "sum by (job, le) (rate(a_total{x=\"y\"}[5m])) / on (job) group_left (m) b_count > 0.5e1",
    );
    assert_eq!(names, BTreeSet::from(["a_total".into(), "b_count".into()]));
    assert_eq!(
        metric_names("max by (i) (inferd_queue_size / inferd_queue_limit) > 0.8"),
        BTreeSet::from(["inferd_queue_limit".into(), "inferd_queue_size".into()])
    );
}

#[tokio::test]
async fn every_dashboard_and_alert_query_answers_against_a_live_inferd() {
    let (exprs, variables) = dashboard_queries();
    let back = Server::start(&["--telemetry", "local"]);
    let dir = TempDir::new("deploy-gw");
    let front = start_gateway(&back, &dir);
    let Some(prometheus) = prometheus::start(
        "deploy",
        &[back.addr(), front.addr()],
        Some(&repo().join("deploy/prometheus/alerts.yml")),
    ) else {
        return;
    };

    // Rates need two scrapes of a changed counter: keep the traffic going until both
    // processes' request histograms move.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        traffic(&back, &front).await;
        let moving = query(
            &prometheus,
            "count(rate(gen_ai_server_request_duration_seconds_count[1m]) > 0)",
        )
        .await;
        let up = query(&prometheus, "up{job=\"inferd\"} == 1").await;
        // Three series: the model on the replica (its own and the gateway's calls), the
        // unknown model's 404s, the model on the gateway.
        let series = moving.and_then(|r| {
            r.first()
                .and_then(|v| v["value"][1].as_str()?.parse::<f64>().ok())
        });
        if series.is_some_and(|n| n >= 3.0) && up.is_some_and(|r| r.len() == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw both processes' traffic"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    traffic(&back, &front).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut empty = Vec::new();
    for (panel, expr) in &exprs {
        let result = query(&prometheus, expr).await.expect("Prometheus answers");
        if result.is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );

    for (metric, label) in &variables {
        let values = api(
            &prometheus,
            &format!("/api/v1/label/{label}/values"),
            &[("match[]", metric.as_str())],
        )
        .await
        .expect("label values");
        assert!(
            values.as_array().is_some_and(|v| !v.is_empty()),
            "variable label_values({metric}, {label}) has no values"
        );
    }

    let known: BTreeSet<String> = api(&prometheus, "/api/v1/label/__name__/values", &[])
        .await
        .expect("metric names")
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for expr in exprs.iter().map(|(_, e)| e) {
        for name in metric_names(expr) {
            assert!(
                known.contains(&name),
                "dashboard metric {name} unknown: {expr}"
            );
        }
    }

    // The rules as Prometheus loaded them from alerts.yml, each evaluated at least once.
    let expected: BTreeSet<String> = alert_runbooks().into_keys().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let groups = api(&prometheus, "/api/v1/rules", &[("type", "alert")])
            .await
            .expect("rules");
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if rules.iter().all(|r| r["health"] != "unknown") && !rules.is_empty() {
            break rules;
        }
        assert!(
            Instant::now() < deadline,
            "rules never evaluated: {rules:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let loaded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(loaded, expected, "alerts loaded by Prometheus");
    for rule in &rules {
        let name = &rule["name"];
        let expr = rule["query"].as_str().expect("query");
        assert_eq!(rule["health"], "ok", "{name}: {rule}");
        query(&prometheus, expr).await.expect("Prometheus answers");
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{name}: no metric in {expr}");
        for metric in names {
            assert!(
                known.contains(&metric),
                "{name}: metric {metric} unknown to Prometheus"
            );
        }
        // Each `for:` is longer than this test: nothing may fire yet.
        assert_ne!(rule["state"], "firing", "{name}: {rule}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
