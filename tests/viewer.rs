//! The trace viewer (GET /debug) end to end against the real binary and the default model:
//! the page's headers and access rule, the list filters and log lines it reads, and the page
//! itself in headless Chromium (scripts/viewer_check.py, selenium with Debian's chromium and
//! chromedriver) after real chat requests, two of them batched together.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{client, get_json, Server, TempDir};
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m";

/// A chat request with `trace_id` as its parent's trace (sampled).
async fn chat(server: &Server, trace_id: &str, model: &str, max_tokens: u32) -> u16 {
    client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("Count to ten, {trace_id}.")}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "ignore_eos": true,
        }))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// The trace ids of `/debug/traces?{query}`.
async fn listed(server: &Server, query: &str) -> Vec<String> {
    let list = get_json(server, &format!("/debug/traces?{query}")).await;
    list["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("no list: {list}"))
        .iter()
        .filter_map(|t| t["trace_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_viewer_page_is_self_contained_uncached_and_behind_the_admin_rule() {
    let token = "a-long-enough-admin-token";
    let server = Server::start(&["--telemetry", "local", "--admin-token", token]);
    for path in ["/debug", "/debug/"] {
        let r = client().get(server.url(path)).send().await.expect("send");
        assert_eq!(r.status(), 401, "{path} without the token");
        let r = client()
            .get(server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), "text/html; charset=utf-8");
        assert_eq!(header("cache-control"), "no-store");
        let policy = header("content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'sha256-",
            "style-src 'sha256-",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(part), "{part} missing from {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let page = r.text().await.expect("page");
        assert!(page.contains("<title>inferd traces</title>"), "{page}");
        assert!(!page.contains("https://"), "no external asset");
    }
    // The list refuses what it does not understand, naming the parameter.
    for (query, param) in [("sort=size", "sort"), ("status=7xx", "status")] {
        let r = client()
            .get(server.url(&format!("/debug/traces?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    let r = client()
        .get(server.url("/debug/traces?min_duration=5"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("min_duration_ms"), "{body}");
}

/// The python with selenium: `INFERD_TEST_SELENIUM_PYTHON`, else the venv
/// scripts/install-selenium.sh makes (and installs when missing, from PyPI only). `Err` says
/// what is missing.
fn selenium_python(root: &Path) -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("INFERD_TEST_SELENIUM_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let out = Command::new(root.join("scripts/install-selenium.sh"))
        .output()
        .map_err(|e| format!("cannot run scripts/install-selenium.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/install-selenium.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// What the browser check needs (Debian's chromium and chromedriver, and selenium); in CI a
/// missing one fails the test, elsewhere it is reported and the check skipped (`None`).
fn browser_tools(root: &Path) -> Option<PathBuf> {
    let missing = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|path| !Path::new(path).is_file())
        .map(|path| format!("{path} is missing (scripts/install-deps.sh installs it)"));
    let python = match missing {
        Some(missing) => Err(missing),
        None => selenium_python(root),
    };
    match python {
        Ok(python) => Some(python),
        Err(why) => {
            assert!(
                std::env::var("CI").is_err(),
                "the viewer's browser check is required in CI: {why}"
            );
            eprintln!("{why}; skipping the viewer's browser check");
            None
        }
    }
}

#[tokio::test]
async fn the_viewer_shows_the_requests_just_sent_in_a_real_browser() {
    let server = Server::start(&["--parallel", "2", "--telemetry", "local"]);
    let alone = "5ee1fe1e000000000000000000000a01";
    let pair = [
        "5ee1fe1e000000000000000000000b01",
        "5ee1fe1e000000000000000000000b02",
    ];
    let unknown = "5ee1fe1e000000000000000000000c01";
    assert_eq!(chat(&server, alone, MODEL, 8).await, 200);
    let both = futures::future::join(
        chat(&server, pair[0], MODEL, 48),
        chat(&server, pair[1], MODEL, 48),
    )
    .await;
    assert_eq!(both, (200, 200));
    assert_eq!(chat(&server, unknown, "no-such-model", 8).await, 404);

    // The generation spans of the pair, and the batch run linked to both.
    let mut generations = Vec::new();
    for trace in pair {
        let spans = common::wait_for_trace(&server, trace, 4).await;
        let generation = spans
            .iter()
            .find(|s| s["name"] == format!("chat {MODEL}"))
            .unwrap_or_else(|| panic!("no generation span in {trace}"));
        generations.push(generation["span_id"].as_str().expect("id").to_owned());
    }
    let mut batch = None;
    for id in listed(&server, "limit=1000").await {
        let trace = get_json(&server, &format!("/debug/traces/{id}")).await;
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        let links_both = spans.iter().any(|s| {
            s["name"] == "model.batch"
                && generations.iter().all(|g| {
                    s["links"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|l| l["span_id"] == g.as_str()))
                })
        });
        if links_both {
            batch = Some(id);
            break;
        }
    }
    let batch = batch.unwrap_or_else(|| panic!("no model.batch linked to both {generations:?}"));

    // What the page reads: filters on the server, log lines with each trace.
    common::wait_for_trace(&server, alone, 4).await;
    // (The polls of /debug/traces/{id} before a trace was stored were 404s too.)
    assert_eq!(
        listed(&server, "route=/v1/chat/completions&status=4xx").await,
        [unknown]
    );
    // (The /ready probes answered 503 while the model loaded: errors too.)
    assert_eq!(
        listed(&server, "route=/v1/chat/completions&error=true").await,
        [unknown]
    );
    let chats = listed(
        &server,
        &format!("route=/v1/chat/completions&model={MODEL}"),
    )
    .await;
    for id in [alone, pair[0], pair[1]] {
        assert!(chats.contains(&id.to_owned()), "{id} not in {chats:?}");
    }
    assert!(!chats.contains(&batch), "a batch trace has no route");
    let list = get_json(
        &server,
        "/debug/traces?route=/v1/chat/completions&status=200",
    )
    .await;
    let entry = list["traces"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["trace_id"] == alone))
        .cloned()
        .unwrap_or_else(|| panic!("{alone} missing: {list}"));
    assert_eq!(entry["model"], MODEL, "{entry}");
    assert_eq!(entry["output_tokens"], 8, "{entry}");
    assert!(
        entry["time_to_first_token_seconds"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{entry}"
    );
    let trace = get_json(&server, &format!("/debug/traces/{alone}")).await;
    let logs = trace["logs"].as_array().cloned().unwrap_or_default();
    assert!(
        logs.iter().all(|l| l["trace_id"] == alone),
        "only the trace's own lines: {logs:?}"
    );
    let access = logs
        .iter()
        .find(|l| l["target"] == "inferd::access")
        .unwrap_or_else(|| panic!("no access line in {logs:?}"));
    assert_eq!(
        access["fields"]["gen_ai.usage.output_tokens"], 8,
        "{access}"
    );

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Some(python) = browser_tools(&root) else {
        return;
    };
    let out = root.join("target/test-artifacts/viewer");
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(&python)
        .arg(root.join("scripts/viewer_check.py"))
        .args(["--base", &server.base])
        .args(["--out", &out.display().to_string()])
        .args(["--chats", &[alone, pair[0], pair[1]].join(",")])
        .args(["--not-found", unknown])
        .args(["--batch", &batch])
        .args(["--member", pair[1]])
        .args(["--member-span", &generations[1]])
        .output()
        .expect("run scripts/viewer_check.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("screenshots of the viewer in {}:\n{stdout}", out.display());
    assert!(
        run.status.success(),
        "the viewer check failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
}

#[tokio::test]
async fn a_gateway_shows_a_trace_with_the_spans_its_inferd_upstream_stored() {
    let replica = Server::start(&["--telemetry", "local"]);
    let dir = TempDir::new("viewer-gw");
    let gateway = Server::start_with_config(
        &dir,
        &format!(
            "[[upstreams]]\nname = \"replica\"\nurl = \"{}/v1\"\nprovider = \"inferd\"\n\
             models = [\"{MODEL}\"]\n",
            replica.base
        ),
        &[],
        &[],
        true,
    );
    let trace = "5ee1fe1e000000000000000000000d01";
    assert_eq!(chat(&gateway, trace, MODEL, 4).await, 200);
    common::wait_for_trace(&replica, trace, 4).await;
    // The gateway's own spans (its SERVER span ends last).
    let mut local = Vec::new();
    for _ in 0..50 {
        let own = client()
            .get(gateway.url(&format!("/debug/traces/{trace}?local=true")))
            .send()
            .await
            .expect("send");
        if own.status() == 200 {
            let own: Value = own.json().await.expect("json");
            local = own["spans"].as_array().cloned().unwrap_or_default();
            if local.iter().any(|s| s["kind"] == "server") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        local.iter().all(|s| s.get("process").is_none()),
        "the gateway's own store: {local:?}"
    );

    let merged = get_json(&gateway, &format!("/debug/traces/{trace}")).await;
    let spans = merged["spans"].as_array().cloned().unwrap_or_default();
    let gateway_ids: Vec<&str> = local.iter().filter_map(|s| s["span_id"].as_str()).collect();
    // The replica's SERVER span is a child of the gateway's CLIENT span: one tree.
    let replica_server = spans
        .iter()
        .find(|s| s["process"] == "replica" && s["kind"] == "server")
        .unwrap_or_else(|| panic!("no replica SERVER span in {merged}"));
    let parent = replica_server["parent_span_id"]
        .as_str()
        .unwrap_or_default();
    assert!(
        gateway_ids.contains(&parent),
        "its parent {parent} is not a gateway span: {merged}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["process"] == "replica" && s["name"] == format!("chat {MODEL}")),
        "the replica's generation span: {merged}"
    );
    assert_eq!(
        spans.len(),
        local.len() + spans.iter().filter(|s| s["process"] == "replica").count()
    );
    let starts: Vec<u64> = spans
        .iter()
        .filter_map(|s| s["start_unix_nanos"].as_u64())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "start order");
    assert_eq!(merged["upstreams"][0]["name"], "replica", "{merged}");
    assert!(
        merged["logs"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["process"] == "replica")),
        "the replica's log lines: {merged}"
    );

    // local=true: the gateway's store alone; a made-up value is refused.
    let own = get_json(&gateway, &format!("/debug/traces/{trace}?local=true")).await;
    assert_eq!(own["spans"].as_array().map(Vec::len), Some(local.len()));
    let r = client()
        .get(gateway.url(&format!("/debug/traces/{trace}?local=maybe")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);

    // A trace held only by the replica is still found through the gateway.
    let direct = "5ee1fe1e000000000000000000000d02";
    assert_eq!(chat(&replica, direct, MODEL, 4).await, 200);
    common::wait_for_trace(&replica, direct, 4).await;
    let through = get_json(&gateway, &format!("/debug/traces/{direct}")).await;
    assert!(
        through["spans"]
            .as_array()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|s| s["process"] == "replica")),
        "{through}"
    );
    // With the replica gone, the gateway still shows its own spans and says why.
    drop(replica);
    let alone = get_json(&gateway, &format!("/debug/traces/{trace}")).await;
    assert_eq!(alone["spans"].as_array().map(Vec::len), Some(local.len()));
    assert!(
        alone["upstreams"][0]["error"].is_string(),
        "why the replica's spans are missing: {alone}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
