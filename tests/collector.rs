//! deploy/docker-compose.yaml's OTLP path against a real collector: rotel (PyPI; its wheel
//! carries the Rust collector `rotel-agent`, scripts/install-rotel.sh installs it) listens on
//! 127.0.0.1 in place of the `otel-collector` service and prints what it receives. inferd runs
//! as deploy/Dockerfile starts it (its CMD, no `--telemetry` flag) with the environment compose
//! gives the `inferd` service, the collector's address swapped in; a chat request with a known
//! trace id must then arrive at the collector over OTLP/gRPC as spans and an access log record
//! of that trace, under compose's service name, and metrics only if compose exports them. A
//! second run with OTLP metrics switched on shows the absence of metrics is not an accident
//! of timing. In CI (env CI set) a missing tool fails; elsewhere it is reported and the test
//! skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{client, free_port, Server};
use serde_json::json;

const CALLER_TRACE: &str = "6e0c63257de34c926f9efcd03927272e";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// How long the spans and the access log record may take to reach the collector.
const ARRIVAL: Duration = Duration::from_secs(30);
/// How long the test waits for metrics once the spans and logs are in: six metric export
/// intervals (OTEL_METRIC_EXPORT_INTERVAL below). The run with metrics on shows it is enough.
const METRICS_GRACE: Duration = Duration::from_secs(3);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

// --- A minimal reader of the block-style YAML of deploy/ -----------------------------------

/// The direct children (`key: value`) of the mapping at `path` of a block-style YAML document,
/// in order; a child that is itself a mapping or a list has the value "". Comments, list items
/// (and mappings inside them) and block scalars' lines are skipped. Enough for
/// deploy/docker-compose.yaml and deploy/otel-collector.yaml; no flow mappings, anchors or
/// multi-line plain scalars.
fn yaml_entries(text: &str, path: &[&str]) -> Vec<(String, String)> {
    // The keys (or `-` for a list item, `|` for a block scalar) enclosing the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut entries = Vec::new();
    for line in text.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if stack.last().is_some_and(|(_, k)| k == "|") {
            continue;
        }
        if content == "-" || content.starts_with("- ") {
            stack.push((indent, "-".to_owned()));
            continue;
        }
        let Some((key, value)) = split_key(content) else {
            continue;
        };
        let value = yaml_scalar(value);
        let here = stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p);
        if here {
            entries.push((key.to_owned(), value.clone()));
        }
        if value.is_empty() {
            stack.push((indent, key.to_owned()));
        } else if value.starts_with('|') || value.starts_with('>') {
            stack.push((indent, "|".to_owned()));
        }
    }
    entries
}

/// `key` and the rest of a `key: value` line: the first colon followed by a space or the end.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let at = content
        .char_indices()
        .find(|&(i, c)| {
            c == ':'
                && content[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })?
        .0;
    let key = content[..at].trim();
    let key = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(key);
    Some((key, &content[at + 1..]))
}

/// A scalar without its quotes or trailing comment.
fn yaml_scalar(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return rest.split(quote).next().unwrap_or_default().to_owned();
        }
    }
    value
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn entry<'a>(entries: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_yaml_reader_reads_block_mappings() {
    let text = "\
# a comment
a:
  b:
    X: http://h:1 # trailing comment
    Y: \"2\"
    list:
      - \"k: v\"
      - name: n
        Z: not a child of b
    script: |
      Q: not a key
    W: 'w # not a comment'
  c: top
d: 1
";
    let own = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        yaml_entries(text, &["a", "b"]),
        own(&[
            ("X", "http://h:1"),
            ("Y", "2"),
            ("list", ""),
            ("script", "|"),
            ("W", "w # not a comment")
        ])
    );
    assert_eq!(yaml_entries(text, &["a"]), own(&[("b", ""), ("c", "top")]));
    assert_eq!(yaml_entries(text, &[]), own(&[("a", ""), ("d", "1")]));
    assert!(yaml_entries(text, &["a", "b", "list"]).is_empty());
    // The real compose file: the inferd service's environment, values unquoted.
    let compose = read("deploy/docker-compose.yaml");
    let environment = yaml_entries(&compose, &["services", "inferd", "environment"]);
    assert!(
        entry(&environment, "OTEL_EXPORTER_OTLP_ENDPOINT").is_some(),
        "{environment:?}"
    );
    assert!(environment.iter().all(|(_, v)| !v.starts_with('"')));
}

// --- What compose and the collector configuration say ---------------------------------------

/// The `environment` of compose's `inferd` service.
fn compose_environment() -> Vec<(String, String)> {
    let environment = yaml_entries(
        &read("deploy/docker-compose.yaml"),
        &["services", "inferd", "environment"],
    );
    assert!(
        !environment.is_empty(),
        "no environment for services.inferd in deploy/docker-compose.yaml"
    );
    environment
}

/// `host` and `port` of an endpoint URL such as `http://otel-collector:4317`.
fn host_and_port(url: &str) -> (String, u16) {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    let port = port
        .parse()
        .unwrap_or_else(|e| panic!("port of {url}: {e}"));
    (host.to_owned(), port)
}

/// The port of the OTLP gRPC receiver in deploy/otel-collector.yaml, after checking a traces
/// and a logs pipeline take from it.
fn collector_grpc_port() -> u16 {
    let collector = read("deploy/otel-collector.yaml");
    let grpc = yaml_entries(&collector, &["receivers", "otlp", "protocols", "grpc"]);
    let endpoint = entry(&grpc, "endpoint")
        .unwrap_or_else(|| panic!("receivers.otlp.protocols.grpc.endpoint missing: {grpc:?}"));
    assert!(
        entry(&grpc, "tls").is_none(),
        "the gRPC receiver has TLS, but compose's endpoint is http://"
    );
    host_and_port(endpoint).1
}

#[test]
fn compose_exports_to_the_collectors_grpc_receiver() {
    let environment = compose_environment();
    let endpoint = entry(&environment, "OTEL_EXPORTER_OTLP_ENDPOINT")
        .expect("compose sets OTEL_EXPORTER_OTLP_ENDPOINT for inferd");
    assert_eq!(
        entry(&environment, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        Some("grpc"),
        "compose names the collector's gRPC port"
    );
    let (host, port) = host_and_port(endpoint);
    assert_eq!(
        port,
        collector_grpc_port(),
        "compose's OTEL_EXPORTER_OTLP_ENDPOINT {endpoint} and the gRPC receiver of deploy/otel-collector.yaml disagree"
    );
    let services = yaml_entries(&read("deploy/docker-compose.yaml"), &["services"]);
    assert!(
        entry(&services, &host).is_some(),
        "{endpoint}: no compose service named {host}"
    );
    // The collector service runs the configuration read above (its volume, a list item the
    // reader skips, and its --config flag).
    let compose = read("deploy/docker-compose.yaml");
    assert!(
        compose.contains("./otel-collector.yaml:/etc/otelcol/config.yaml")
            && compose.contains("--config=/etc/otelcol/config.yaml"),
        "the {host} service does not run deploy/otel-collector.yaml"
    );
}

// --- rotel -----------------------------------------------------------------------------------

/// The path of rotel-agent, installed by scripts/install-rotel.sh once per test binary (the
/// tests run in parallel; one pip run at a time); `None` (outside CI) when it cannot be
/// installed.
fn install_rotel() -> Option<PathBuf> {
    static AGENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            let install = Command::new("scripts/install-rotel.sh")
                .current_dir(repo())
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/install-rotel.sh");
            if !install.status.success() {
                assert!(
                    std::env::var("CI").is_err(),
                    "scripts/install-rotel.sh failed in CI"
                );
                eprintln!("rotel could not be installed from PyPI; skipping");
                return None;
            }
            Some(PathBuf::from(
                String::from_utf8_lossy(&install.stdout).trim(),
            ))
        })
        .clone()
}

/// rotel-agent in the foreground, printing what it receives; killed on drop.
struct Rotel {
    child: Child,
    /// Its standard output so far (the debug log of what it received).
    out: Arc<Mutex<String>>,
    grpc: String,
    http: String,
    /// Its pid and log files; removed after the process ends.
    _dir: common::TempDir,
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rotel {
    /// Starts rotel-agent on free 127.0.0.1 ports, receiving OTLP over gRPC and HTTP, printing
    /// every span, log record and metric it receives in detail and exporting nothing; waits
    /// until both ports accept connections.
    fn start(agent: &std::path::Path, tag: &str) -> Option<Rotel> {
        let dir = common::TempDir::new(&format!("collector-{tag}"));
        let grpc = format!("127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
        let spawned = Command::new(agent)
            .arg("start")
            .args(["--otlp-grpc-endpoint", &grpc])
            .args(["--otlp-http-endpoint", &http])
            .args(["--debug-log", "traces"])
            .args(["--debug-log", "logs"])
            .args(["--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed"])
            .args(["--exporter", "blackhole"])
            .arg("--pid-file")
            .arg(dir.join("rotel-agent.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel-agent.log"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "{} cannot run in CI: {e}",
                    agent.display()
                );
                eprintln!("{} cannot run ({e}); skipping", agent.display());
                return None;
            }
        };
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let sink = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = sink.lock().expect("lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let mut rotel = Rotel {
            child,
            out,
            grpc,
            http,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while [&rotel.grpc, &rotel.http]
            .iter()
            .any(|addr| std::net::TcpStream::connect(addr.as_str()).is_err())
        {
            if let Ok(Some(status)) = rotel.child.try_wait() {
                panic!("rotel-agent exited ({status}): {}", rotel.output());
            }
            assert!(
                Instant::now() < deadline,
                "rotel-agent never listened on {} and {}: {}",
                rotel.grpc,
                rotel.http,
                rotel.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(rotel)
    }

    fn output(&self) -> String {
        self.out.lock().expect("lock").clone()
    }

    fn received(&self) -> Vec<Item> {
        parse_debug_log(&self.output())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
    Metrics,
}

/// One span, log record or metric as rotel's detailed debug log prints it.
#[derive(Debug, Clone)]
struct Item {
    signal: Signal,
    resource: Vec<(String, String)>,
    scope: String,
    /// `Name`, `Trace ID`, `Body`, ... (`Field : value` lines), first occurrence first.
    fields: Vec<(String, String)>,
    /// The `-> key: value` lines under it (attributes, a metric's descriptor).
    attributes: Vec<(String, String)>,
}

/// `Str(x)` as `x`; other values (`Int(200)`) as printed.
fn unwrap_str(value: &str) -> &str {
    value
        .strip_prefix("Str(")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(value)
}

impl Item {
    fn field(&self, name: &str) -> Option<&str> {
        entry(&self.fields, name)
    }

    fn attr(&self, key: &str) -> Option<&str> {
        entry(&self.attributes, key).map(unwrap_str)
    }

    fn resource_attr(&self, key: &str) -> Option<&str> {
        entry(&self.resource, key).map(unwrap_str)
    }
}

/// The items of rotel's `--debug-log-verbosity detailed` output (the layout of the
/// OpenTelemetry Collector's debug exporter): `ResourceSpans #n` / `ResourceLog #n` /
/// `ResourceMetrics #n`, their `Resource attributes:` (`-> key: Str(value)`), an
/// `InstrumentationScope name` per scope, then `Span #n` / `LogRecord #n` / `Metric #n` each
/// with `Field : value` lines and `-> key: value` attributes.
fn parse_debug_log(text: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut signal = None;
    let mut resource = Vec::new();
    let mut scope = String::new();
    let mut in_item = false;
    for line in text.lines() {
        let line = line.trim();
        let starts = [
            ("ResourceSpans #", Signal::Traces),
            ("ResourceLog #", Signal::Logs),
            ("ResourceMetrics #", Signal::Metrics),
        ];
        if let Some((_, s)) = starts.iter().find(|(p, _)| line.starts_with(p)) {
            signal = Some(*s);
            resource.clear();
            scope.clear();
            in_item = false;
            continue;
        }
        let Some(signal) = signal else {
            continue;
        };
        if let Some(name) = line.strip_prefix("InstrumentationScope") {
            scope = name.trim().to_owned();
            in_item = false;
        } else if ["Span #", "LogRecord #", "Metric #"]
            .iter()
            .any(|p| line.starts_with(p))
        {
            items.push(Item {
                signal,
                resource: resource.clone(),
                scope: scope.clone(),
                fields: Vec::new(),
                attributes: Vec::new(),
            });
            in_item = true;
        } else if let Some((key, value)) = line
            .strip_prefix("-> ")
            .and_then(|attr| attr.split_once(": "))
        {
            let pair = (key.trim().to_owned(), value.trim().to_owned());
            match items.last_mut() {
                Some(item) if in_item => item.attributes.push(pair),
                _ => resource.push(pair),
            }
        } else if let (Some(item), true) = (items.last_mut(), in_item) {
            if let Some((key, value)) = line.split_once(':') {
                item.fields
                    .push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    items
}

#[test]
fn rotels_debug_log_is_parsed() {
    let text = "\
2026-01-01T00:00:00Z  INFO Starting Rotel. grpc_endpoint=\"127.0.0.1:1\"
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc)
ScopeSpans #0
InstrumentationScope inferd 
Span #0
    Trace ID       : 0af7651916cd43dd8448eb211c80319c
    Parent ID      : b7ad6b7169203331
    Name           : POST /v1/chat/completions
Attributes:
     -> http.route: Str(/v1/chat/completions)
ResourceLog #0
Resource attributes:
     -> service.name: Str(other)
ScopeLogs #0
InstrumentationScope inferd::access 
LogRecord #0
Body: Str(request)
Attributes:
     -> http.response.status_code: Int(200)
    Trace ID       : 0af7651916cd43dd8448eb211c80319c
";
    let items = parse_debug_log(text);
    assert_eq!(items.len(), 2, "{items:?}");
    let span = &items[0];
    assert_eq!(span.signal, Signal::Traces);
    assert_eq!(span.resource_attr("service.name"), Some("svc"));
    assert_eq!(span.scope, "inferd");
    assert_eq!(span.field("Name"), Some("POST /v1/chat/completions"));
    assert_eq!(
        span.field("Trace ID"),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(span.attr("http.route"), Some("/v1/chat/completions"));
    let log = &items[1];
    assert_eq!(log.signal, Signal::Logs);
    assert_eq!(log.resource_attr("service.name"), Some("other"));
    assert_eq!(log.scope, "inferd::access");
    assert_eq!(log.field("Body"), Some("Str(request)"));
    assert_eq!(log.attr("http.response.status_code"), Some("Int(200)"));
    assert_eq!(
        log.field("Trace ID"),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
}

// --- inferd with compose's environment -------------------------------------------------------

/// Keys of compose's environment the test does not pass on: the arguments below set the
/// address, the model and one compute thread (as every end-to-end test does) instead.
const NOT_HONOURED: [&str; 5] = [
    "INFERD_THREADS",
    "INFERD_HOST",
    "INFERD_PORT",
    "INFERD_MODEL",
    "INFERD_HOME",
];

/// The arguments deploy/Dockerfile runs inferd with (its exec-form CMD).
fn dockerfile_cmd() -> Vec<String> {
    let dockerfile = read("deploy/Dockerfile");
    let cmd = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("CMD "))
        .next_back()
        .expect("deploy/Dockerfile has a CMD");
    serde_json::from_str(cmd).unwrap_or_else(|e| panic!("CMD {cmd} is not exec form: {e}"))
}

/// Compose's environment for inferd with the collector's address replaced by `rotel`'s,
/// then `overrides`, then the settings that only make export prompt.
fn environment_for(rotel: &Rotel, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let grpc_port = collector_grpc_port();
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, value) in compose_environment() {
        if NOT_HONOURED.contains(&key.as_str()) {
            continue;
        }
        let value = if key.starts_with("OTEL_EXPORTER_OTLP") && key.ends_with("ENDPOINT") {
            let (host, port) = host_and_port(&value);
            let to = if port == grpc_port {
                &rotel.grpc
            } else {
                &rotel.http
            };
            value.replace(&format!("{host}:{port}"), to)
        } else {
            value
        };
        assert!(
            !value.contains("otel-collector"),
            "{key}={value}: the test cannot reach the compose service"
        );
        env.push((key, value));
    }
    for (key, value) in overrides {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    // Timing only: spans and log records sent within 100 ms instead of 5 s and 1 s, metrics
    // (where exported) every 500 ms instead of 60 s.
    for (key, value) in [
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ] {
        assert!(
            entry(&env, key).is_none(),
            "compose sets {key}: the test would override it"
        );
        env.push((key.to_owned(), value.to_owned()));
    }
    env
}

/// What one run saw: the environment inferd had, and the collector's items once the request's
/// spans and access log record were in.
struct Run {
    env: Vec<(String, String)>,
    rotel: Rotel,
    _server: Server,
}

/// Starts rotel and inferd (compose's environment plus `overrides`), sends one chat request as
/// part of trace [`CALLER_TRACE`] and waits until the collector has its HTTP and generation
/// spans and its access log record, each under the environment's service.name and
/// deployment.environment.name. `None` when rotel is not available (outside CI).
async fn run_compose_inferd(tag: &str, overrides: &[(&str, &str)]) -> Option<Run> {
    let agent = install_rotel()?;
    let rotel = Rotel::start(&agent, tag)?;
    let env = environment_for(&rotel, overrides);
    let mut args = dockerfile_cmd();
    let model = format!("smollm2-135m={}", common::model_path().display());
    for arg in [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "1",
        "--model",
        &model,
    ] {
        args.push(arg.to_owned());
    }
    eprintln!("inferd {}\nenvironment: {env:?}", args.join(" "));
    let spawn_env = env.clone();
    let server = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = spawn_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start_with_env(&args, &env, true)
    })
    .await
    .expect("server start");

    let response = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "smollm2-135m", "max_tokens": 4,
                      "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );

    let service = entry(&env, "OTEL_SERVICE_NAME")
        .expect("compose names the service (OTEL_SERVICE_NAME)")
        .to_owned();
    let environment_name = entry(&env, "INFERD_DEPLOYMENT_ENVIRONMENT").map(str::to_owned);
    let of_trace = |item: &Item| item.field("Trace ID") == Some(CALLER_TRACE);
    let deadline = Instant::now() + ARRIVAL;
    let (spans, access) = loop {
        let items = rotel.received();
        let spans: Vec<Item> = items
            .iter()
            .filter(|i| i.signal == Signal::Traces && of_trace(i))
            .cloned()
            .collect();
        let access: Option<Item> = items
            .iter()
            .find(|i| {
                i.signal == Signal::Logs
                    && i.scope == "inferd::access"
                    && i.field("Body") == Some("Str(request)")
                    && of_trace(i)
            })
            .cloned();
        let named = |name: &str| spans.iter().any(|s| s.field("Name") == Some(name));
        if let Some(access) = access {
            if named("POST /v1/chat/completions") && named("chat smollm2-135m") {
                break (spans, access);
            }
        }
        assert!(
            Instant::now() < deadline,
            "within {ARRIVAL:?} the collector did not get the request's spans \
             (`POST /v1/chat/completions`, `chat smollm2-135m`) and its access log record, \
             all of trace {CALLER_TRACE}; it printed:\n{}\ninferd logged: {:#?}",
            rotel.output(),
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    for item in spans.iter().chain([&access]) {
        assert_eq!(
            item.resource_attr("service.name"),
            Some(service.as_str()),
            "service.name of {item:?}"
        );
        assert_eq!(
            item.resource_attr("deployment.environment.name"),
            environment_name.as_deref(),
            "deployment.environment.name of {item:?}"
        );
    }
    let http = spans
        .iter()
        .find(|s| s.field("Name") == Some("POST /v1/chat/completions"))
        .expect("checked");
    assert_eq!(http.field("Parent ID"), Some(CALLER_SPAN), "{http:?}");
    assert_eq!(access.attr("http.response.status_code"), Some("Int(200)"));
    assert_eq!(access.attr("gen_ai.request.model"), Some("smollm2-135m"));
    Some(Run {
        env,
        rotel,
        _server: server,
    })
}

/// The metrics of `service` the collector received.
fn metrics_of(rotel: &Rotel, service: &str) -> Vec<Item> {
    rotel
        .received()
        .into_iter()
        .filter(|i| i.signal == Signal::Metrics && i.resource_attr("service.name") == Some(service))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_environment_exports_traces_and_logs_over_otlp_grpc_to_a_real_collector() {
    let Some(run) = run_compose_inferd("compose", &[]).await else {
        return;
    };
    let metrics_exporter = entry(&run.env, "OTEL_METRICS_EXPORTER").unwrap_or("otlp");
    let service = entry(&run.env, "OTEL_SERVICE_NAME").expect("checked");
    tokio::time::sleep(METRICS_GRACE).await;
    let metrics = metrics_of(&run.rotel, service);
    let names: Vec<Option<&str>> = metrics.iter().map(|m| m.attr("Name")).collect();
    if metrics_exporter == "none" {
        // Prometheus scrapes /metrics instead (compose's comment): nothing over OTLP.
        assert!(
            metrics.is_empty(),
            "OTEL_METRICS_EXPORTER=none, yet the collector received metrics: {names:?}"
        );
    } else {
        assert!(
            names.contains(&Some("gen_ai.server.request.duration")),
            "OTEL_METRICS_EXPORTER={metrics_exporter}, yet no request metric arrived: {names:?}"
        );
    }
}

/// The control of the test above: the same environment with OTLP metrics on delivers them
/// within the same wait, so their absence there is the exporter being off. Its service name
/// differs from compose's (which is also inferd's default), so the resource checks of
/// `run_compose_inferd` show OTEL_SERVICE_NAME is honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_otlp_metrics_switched_on_the_same_environment_delivers_metrics() {
    let Some(run) = run_compose_inferd(
        "metrics-on",
        &[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_SERVICE_NAME", "inferd-metrics-on"),
        ],
    )
    .await
    else {
        return;
    };
    let service = entry(&run.env, "OTEL_SERVICE_NAME").expect("checked");
    tokio::time::sleep(METRICS_GRACE).await;
    let metrics = metrics_of(&run.rotel, service);
    let names: Vec<Option<&str>> = metrics.iter().map(|m| m.attr("Name")).collect();
    assert!(
        names.contains(&Some("gen_ai.server.request.duration")),
        "no gen_ai.server.request.duration within {METRICS_GRACE:?}: {names:?}\n{}",
        run.rotel.output()
    );
}
