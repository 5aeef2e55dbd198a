//! End-to-end tests of continuous batching and the prompt cache in the local engine: the real
//! binary, the real default model, real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{client, get_json, sse_data, Server};
use futures::StreamExt;
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m";

/// A streamed chat completion's text and final usage object.
async fn stream_chat(server: &Server, body: Value) -> (String, Value) {
    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let mut content = String::new();
    let mut usage = Value::Null;
    for chunk in data.iter().filter(|d| d.as_str() != "[DONE]") {
        let chunk: Value = serde_json::from_str(chunk).expect("chunk json");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
        if chunk["usage"].is_object() {
            usage = chunk["usage"].clone();
        }
    }
    (content, usage)
}

fn question(i: usize, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": format!("Tell me one fact about the number {i}.")}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "ignore_eos": true,
    })
}

#[tokio::test]
async fn eight_concurrent_streams_give_the_same_text_as_each_alone() {
    let server = Server::start(&["--parallel", "8"]);
    let mut alone = Vec::new();
    for i in 0..8 {
        alone.push(stream_chat(&server, question(i, 24)).await);
    }
    let together =
        futures::future::join_all((0..8).map(|i| stream_chat(&server, question(i, 24)))).await;
    for (i, ((text, usage), (solo_text, _))) in together.iter().zip(&alone).enumerate() {
        assert_eq!(
            text, solo_text,
            "stream {i}: batching changed a greedy answer"
        );
        assert_eq!(usage["completion_tokens"], 24, "stream {i}: {usage}");
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + 24),
            "{usage}"
        );
        assert!(!text.is_empty());
    }
    // They ran together: some engine steps held more than one sequence.
    let metrics = common::metrics_text(&server).await;
    let series = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains("inferd_batch_phase=\"decode\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let runs = series("inferd_batch_size_count");
    let single = series("inferd_batch_size_bucket{gen_ai_request_model=\"smollm2-135m\",inferd_batch_phase=\"decode\",le=\"1\"}");
    assert!(
        runs > single,
        "every decode run had one sequence:\n{metrics}"
    );
    let models = get_json(&server, "/admin/models").await;
    let slots = &models["models"][0]["slots"];
    assert_eq!(slots["slots"], 8, "{models}");
    assert_eq!(slots["running"], 0, "all finished: {models}");
}

/// Reads `stream` until it has seen `n` more content chunks; false if it ended first.
async fn read_chunks(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    n: usize,
) -> bool {
    let mut seen = 0;
    while seen < n {
        match stream.next().await {
            Some(Ok(bytes)) => {
                seen += String::from_utf8_lossy(&bytes).matches("data: ").count();
            }
            _ => return false,
        }
    }
    true
}

fn endless(prompt: &str) -> Value {
    json!({"model": MODEL, "prompt": prompt, "max_tokens": 4000,
           "temperature": 0, "ignore_eos": true, "stream": true})
}

#[tokio::test]
async fn a_cancelled_stream_frees_its_slot_for_the_next_request() {
    let server = Server::start(&["--parallel", "2"]);
    let open = |body: Value| {
        let url = server.url("/v1/completions");
        async move {
            client()
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .bytes_stream()
        }
    };
    let mut a = open(endless("Write a long story about a cat.")).await;
    let mut b = open(endless("Write a long story about a dog.")).await;
    assert!(read_chunks(&mut a, 1).await && read_chunks(&mut b, 1).await);
    // Both slots are busy for minutes; dropping A must free one for C while B goes on.
    drop(a);
    let started = std::time::Instant::now();
    let (status, body) = {
        let r = client()
            .post(server.url("/v1/completions"))
            .json(&json!({"model": MODEL, "prompt": "Hi", "max_tokens": 4, "ignore_eos": true}))
            .send()
            .await
            .expect("send c");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert!(
        read_chunks(&mut b, 1).await,
        "B, still running, must go on streaming"
    );
    // C did not wait for B's 4000 tokens.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_long_prompt_admitted_while_another_decodes_does_not_stop_its_stream() {
    // Prompt chunks of 32 tokens: a ~1500-token prompt takes dozens of steps, and the running
    // stream decodes one token in each of them.
    let server = Server::start(&["--parallel", "2", "--prefill-chunk", "32"]);
    let mut a = client()
        .post(server.url("/v1/completions"))
        .json(&endless("Once upon a time"))
        .send()
        .await
        .expect("send a")
        .bytes_stream();
    assert!(read_chunks(&mut a, 1).await);
    let long_prompt = "The quick brown fox jumps over the lazy dog. ".repeat(150);
    let url = server.url("/v1/completions");
    let long = tokio::spawn(async move {
        let r = client()
            .post(url)
            .json(
                &json!({"model": MODEL, "prompt": long_prompt, "max_tokens": 1,
                          "temperature": 0, "stream": true}),
            )
            .send()
            .await
            .expect("send long");
        let mut stream = r.bytes_stream();
        // The first chunk of the long request arrives once its whole prompt is processed.
        let _ = stream.next().await;
        std::time::Instant::now()
    });
    // While the long prompt is processed, A keeps getting tokens.
    let mut during = 0usize;
    while !long.is_finished() {
        match tokio::time::timeout(Duration::from_secs(30), a.next()).await {
            Ok(Some(Ok(bytes))) => {
                during += String::from_utf8_lossy(&bytes).matches("data: ").count();
            }
            other => panic!("stream A stalled or ended: {other:?}"),
        }
    }
    long.await.expect("long request");
    assert!(
        during >= 20,
        "stream A got only {during} chunks while a ~1500-token prompt was processed in 32-token chunks"
    );
}

#[tokio::test]
async fn a_repeated_long_system_prompt_is_served_from_the_prompt_cache() {
    let server = Server::start(&["--parallel", "2", "--telemetry", "local"]);
    let system = "You are a meticulous assistant for a library. ".repeat(40);
    let ask = |question: &str, trace: &str| {
        let body = json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question}
            ],
            "temperature": 0,
            "max_tokens": 4,
        });
        let url = server.url("/v1/chat/completions");
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        async move {
            let r = client()
                .post(url)
                .header("traceparent", traceparent)
                .json(&body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let first_trace = "7bf92f3577b34da6a3ce929d0e0e4701";
    let second_trace = "7bf92f3577b34da6a3ce929d0e0e4702";
    let first = ask("Where are the maps?", first_trace).await;
    let second = ask("When do you open?", second_trace).await;
    let prompt = second["usage"]["prompt_tokens"].as_u64().expect("prompt");
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .expect("cached_tokens");
    assert!(prompt > 300, "{second}");
    assert!(
        cached > 300 && cached < prompt,
        "the shared system prompt comes from the cache: {second}"
    );
    assert_eq!(
        first["usage"]["prompt_tokens_details"]["cached_tokens"], 0,
        "nothing was cached before the first request: {first}"
    );
    // The generation spans say the same, and the cached prompt was processed faster.
    let prefill = |spans: &[Value]| -> (f64, Value) {
        let generation = spans
            .iter()
            .find(|s| s["name"] == format!("chat {MODEL}"))
            .expect("generation span");
        let a = &generation["attributes"];
        (
            a["gen_ai.latency.time_in_model_prefill"]
                .as_f64()
                .expect("prefill time"),
            a["gen_ai.usage.cache_read.input_tokens"].clone(),
        )
    };
    let (first_prefill, first_cached) =
        prefill(&common::wait_for_trace(&server, first_trace, 4).await);
    let (second_prefill, second_cached) =
        prefill(&common::wait_for_trace(&server, second_trace, 4).await);
    assert_eq!(first_cached, 0);
    assert_eq!(second_cached.as_u64(), Some(cached));
    assert!(
        second_prefill < first_prefill,
        "prefill with {cached} cached tokens took {second_prefill}s, without {first_prefill}s"
    );
}

#[tokio::test]
async fn admin_models_shows_the_slots_and_kv_cache() {
    let server = Server::start(&["--parallel", "3", "--ctx-size", "2400"]);
    let (_, usage) = stream_chat(&server, question(1, 4)).await;
    assert_eq!(usage["completion_tokens"], 4);
    let models = get_json(&server, "/admin/models").await;
    let slots = &models["models"][0]["slots"];
    assert_eq!(slots["slots"], 3, "{models}");
    assert_eq!(slots["running"], 0, "{models}");
    assert_eq!(slots["waiting"], 0, "{models}");
    assert_eq!(slots["kv_cells"], 2400, "{models}");
    // The finished request's tokens stay as the prompt cache.
    assert!(
        slots["kv_cells_cached"].as_u64().is_some_and(|n| n > 0),
        "{models}"
    );
}

#[tokio::test]
async fn batched_requests_have_model_batch_spans_linked_to_them_in_debug_traces() {
    let server = Server::start(&["--parallel", "2", "--telemetry", "local"]);
    let traces = [
        "9bf92f3577b34da6a3ce929d0e0e4701",
        "9bf92f3577b34da6a3ce929d0e0e4702",
    ];
    let requests = traces.iter().map(|trace| {
        let request = client()
            .post(server.url("/v1/completions"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .json(&json!({"model": MODEL, "prompt": format!("List {trace}:"),
                          "max_tokens": 48, "temperature": 0, "ignore_eos": true}));
        async move { request.send().await.expect("send").status() }
    });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, 200);
    }
    let mut generations = Vec::new();
    for trace in traces {
        let spans = common::wait_for_trace(&server, trace, 4).await;
        let generation = spans
            .iter()
            .find(|s| s["name"] == format!("text_completion {MODEL}"))
            .expect("generation span");
        generations.push(generation["span_id"].as_str().expect("id").to_owned());
    }
    // The batch spans are traces of their own, linked to the generations they served.
    let list = get_json(&server, "/debug/traces").await;
    let mut linked_to_both = 0;
    for entry in list["traces"].as_array().expect("traces") {
        if entry["root_span_name"] != "model.batch" {
            continue;
        }
        let id = entry["trace_id"].as_str().expect("trace id");
        let trace = get_json(&server, &format!("/debug/traces/{id}")).await;
        for span in trace["spans"].as_array().expect("spans") {
            let links: Vec<&str> = span["links"]
                .as_array()
                .map(|l| l.iter().filter_map(|l| l["span_id"].as_str()).collect())
                .unwrap_or_default();
            if generations.iter().all(|g| links.contains(&g.as_str())) {
                assert_eq!(span["attributes"]["inferd.batch.size"], 2, "{span}");
                assert!(span["parent_span_id"].is_null(), "{span}");
                linked_to_both += 1;
            }
        }
    }
    assert!(
        linked_to_both >= 1,
        "no model.batch span linked to both {generations:?}: {list}"
    );
}
