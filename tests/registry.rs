//! End-to-end: the model registry with the real binary and model. Models loaded on first use
//! with single flight, unload and load through the admin API, and a memory budget whose
//! eviction never breaks an active stream.

mod common;

use common::{client, get_json, metrics_text, model_path, sse_data, Server, TempDir};
use serde_json::{json, Value};

/// A server whose config file declares on-demand models `ids` (all the default model's file)
/// and any extra top-level settings.
fn start(ids: &[&str], extra_toml: &str, name: &str) -> Server {
    let dir = TempDir::new(&format!("registry-{name}"));
    let mut toml = format!("{extra_toml}\n");
    for id in ids {
        toml.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nsource = \"{}\"\nload = \"on_demand\"\naliases = [\"{id}-alias\"]\n",
            model_path().display()
        ));
    }
    Server::start_with_config(&dir, &toml, &[], &[], true).keep(dir)
}

async fn admin_models(server: &Server) -> Value {
    get_json(server, "/admin/models").await
}

fn model_state(list: &Value, id: &str) -> String {
    list["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == id))
        .and_then(|m| m["state"].as_str())
        .unwrap_or_else(|| panic!("no model {id} in {list}"))
        .to_owned()
}

async fn metric(server: &Server, prefix: &str) -> f64 {
    metrics_text(server)
        .await
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn complete(server: &Server, model: &str) -> reqwest::Response {
    client()
        .post(server.url("/v1/completions"))
        .json(&json!({"model": model, "prompt": "Hello", "max_tokens": 2}))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn concurrent_first_requests_for_a_cold_model_cause_one_load_and_are_all_served() {
    let server = start(&["cold"], "", "single-flight");
    assert_eq!(
        model_state(&admin_models(&server).await, "cold"),
        "available"
    );
    // Not listed while not loaded; /ready is fine (it loads on first use).
    let models: Value = get_json(&server, "/v1/models").await;
    assert_eq!(models["data"], json!([]));

    let requests = (0..8).map(|i| {
        let url = server.url("/v1/completions");
        // Half by id, half by alias.
        let model = if i % 2 == 0 { "cold" } else { "cold-alias" };
        async move {
            client()
                .post(url)
                .json(&json!({"model": model, "prompt": "Hello", "max_tokens": 2}))
                .send()
                .await
                .expect("send")
                .status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(metric(&server, "inferd_model_loads_total").await, 1.0);
    let list = admin_models(&server).await;
    assert_eq!(model_state(&list, "cold"), "ready");
    let cold = &list["models"][0];
    assert_eq!(cold["artifact_source"], "local_cache");
    assert_eq!(
        cold["bytes"],
        std::fs::metadata(model_path()).expect("model").len()
    );

    // The load belongs to the request that triggered it: a model.load span under an HTTP span.
    let traces: Value = get_json(&server, "/debug/traces").await;
    let mut found = false;
    for t in traces["traces"].as_array().expect("traces") {
        let id = t["trace_id"].as_str().expect("id");
        let trace: Value = get_json(&server, &format!("/debug/traces/{id}")).await;
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        if let Some(load) = spans.iter().find(|s| s["name"] == "model.load") {
            let parent = spans
                .iter()
                .find(|s| s["span_id"] == load["parent_span_id"])
                .unwrap_or_else(|| panic!("model.load has no parent in {trace}"));
            assert_eq!(parent["kind"], "server", "{parent}");
            assert!(spans
                .iter()
                .any(|s| s["name"] == "model.artifacts.load"
                    && s["parent_span_id"] == load["span_id"]));
            found = true;
        }
    }
    assert!(found, "no request trace holds the model.load span");
}

#[tokio::test]
async fn the_admin_api_unloads_and_loads_models() {
    let server = start(&["m"], "", "admin");
    let r = client()
        .post(server.url("/admin/models/m/unload"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 409, "not loaded yet");
    let r = client()
        .post(server.url("/admin/models/m-alias/load"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["state"], "ready", "{body}");
    assert!(body["load_seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert_eq!(complete(&server, "m").await.status(), 200);

    let r = client()
        .post(server.url("/admin/models/m/unload"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["state"], "available", "{body}");
    assert_eq!(
        metric(&server, "inferd_model_unloads_total").await,
        1.0,
        "the unload is counted"
    );
    assert_eq!(metric(&server, "inferd_models_loaded").await, 0.0);
    // The next request loads it again.
    assert_eq!(complete(&server, "m").await.status(), 200);
    assert_eq!(metric(&server, "inferd_model_loads_total").await, 2.0);

    let r = client()
        .post(server.url("/admin/models/nope/load"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn eviction_under_a_memory_budget_never_breaks_an_active_stream() {
    let size = std::fs::metadata(model_path()).expect("model").len();
    // Room for one model, not two.
    let budget = format!("memory_budget = \"{}\"", size + size / 2);
    let server = start(&["a", "b"], &budget, "budget");

    // A long stream on `a`.
    let mut stream = client()
        .post(server.url("/v1/completions"))
        .json(
            &json!({"model": "a", "prompt": "Once upon a time", "max_tokens": 300,
                      "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(stream.status(), 200);
    let mut body = String::new();
    while sse_data(&body).len() < 2 {
        let chunk = stream.chunk().await.expect("chunk").expect("more");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    // `b` does not fit while `a` is busy: refused, and `a` is untouched.
    let r = complete(&server, "b").await;
    assert_eq!(r.status(), 503);
    let err: Value = r.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("memory budget")),
        "{err}"
    );
    let list = admin_models(&server).await;
    assert_eq!(model_state(&list, "a"), "ready");
    assert_eq!(list["models"][0]["in_flight"], 1, "{list}");
    // The stream runs to its end.
    while let Some(chunk) = stream.chunk().await.expect("chunk") {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // No error event (the generated text itself may well say "error").
    assert!(
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .all(|e| e.get("error").is_none()),
        "{body}"
    );
    // Now `a` is idle: loading `b` evicts it.
    assert_eq!(complete(&server, "b").await.status(), 200);
    let list = admin_models(&server).await;
    assert_eq!(model_state(&list, "a"), "available");
    assert_eq!(model_state(&list, "b"), "ready");
    assert_eq!(metric(&server, "inferd_model_unloads_total").await, 1.0);
}
