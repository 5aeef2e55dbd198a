//! A real Prometheus server (Debian's `prometheus`, installed by scripts/install-deps.sh)
//! scrapes a real inferd and answers the queries an operator's dashboard asks: latency
//! quantiles by provider from the GenAI histograms, the token rate, and the scrape itself.
//! Required in CI; elsewhere a missing `prometheus` is reported and the test skipped.

mod common;

use std::time::{Duration, Instant};

use common::prometheus::{self, Prometheus};
use common::{client, Server};
use serde_json::{json, Value};

/// The result vector of an instant query (empty while Prometheus is starting).
async fn query(prometheus: &Prometheus, promql: &str) -> Vec<Value> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", prometheus.base),
        &[("query", promql)],
    )
    .expect("url");
    let Ok(r) = client().get(url).send().await else {
        return Vec::new();
    };
    let Ok(body) = r.json::<Value>().await else {
        return Vec::new();
    };
    assert_ne!(body["status"], "error", "{promql}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `promql` until it has a result, sending a request to `server` between polls so
/// the rates have samples to work with.
async fn wait_for(prometheus: &Prometheus, server: &Server, promql: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = query(prometheus, promql).await;
        if !result.is_empty() {
            return result;
        }
        assert!(Instant::now() < deadline, "no result for {promql}");
        generate(server).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn generate(server: &Server) {
    let r = client()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "smollm2-135m", "max_tokens": 4, "ignore_eos": true,
                      "stream": true,
                      "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body");
}

#[tokio::test]
async fn a_prometheus_server_scraping_inferd_answers_quantiles_by_provider() {
    let server = Server::start(&["--telemetry", "local"]);
    let target = server.base.trim_start_matches("http://").to_owned();
    let Some(prometheus) = prometheus::start("prometheus", &[target.to_string()], None) else {
        return;
    };
    generate(&server).await;

    let up = wait_for(&prometheus, &server, "up{job=\"inferd\"} == 1").await;
    assert_eq!(up.len(), 1, "{up:?}");

    for histogram in [
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_time_per_output_token_seconds",
        "gen_ai_server_request_duration_seconds",
    ] {
        let promql = format!(
            "histogram_quantile(0.95, sum by (le, gen_ai_provider_name) \
             (rate({histogram}_bucket[5s])))"
        );
        let result = wait_for(&prometheus, &server, &promql).await;
        let inferd = result
            .iter()
            .find(|r| r["metric"]["gen_ai_provider_name"] == "inferd")
            .unwrap_or_else(|| panic!("{promql}: no inferd series in {result:?}"));
        let value: f64 = inferd["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{promql}: {inferd}"));
        assert!(value.is_finite() && value > 0.0, "{promql}: {value}");
    }

    let tokens = wait_for(
        &prometheus,
        &server,
        "sum by (gen_ai_request_model) (rate(inferd_generation_tokens_total[5s])) > 0",
    )
    .await;
    assert_eq!(tokens[0]["metric"]["gen_ai_request_model"], "smollm2-135m");

    // Exemplars: a TTFT bucket's exemplar names a trace this inferd has.
    let trace_id = exemplar_trace_id(&prometheus, &server).await;
    let r = client()
        .get(server.url(&format!("/debug/traces/{trace_id}")))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        200,
        "exemplar trace {trace_id} unknown to /debug/traces"
    );
}

/// The trace id of an exemplar Prometheus scraped for the time-to-first-token buckets.
async fn exemplar_trace_id(prometheus: &Prometheus, server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query_exemplars", prometheus.base),
            &[
                ("query", "gen_ai_server_time_to_first_token_seconds_bucket"),
                ("start", &(now - 600).to_string()),
                ("end", &(now + 60).to_string()),
            ],
        )
        .expect("url");
        if let Ok(r) = client().get(url).send().await {
            let body: Value = r.json().await.unwrap_or_default();
            let found = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .find_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned));
            if let Some(trace_id) = found {
                assert_eq!(trace_id.len(), 32, "{trace_id}");
                return trace_id;
            }
        }
        assert!(Instant::now() < deadline, "no exemplar was scraped");
        generate(server).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
