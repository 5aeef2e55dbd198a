use super::*;
use crate::input::InputLine;

fn lines(n: usize) -> Vec<InputLine> {
    (0..n)
        .map(|i| InputLine {
            custom_id: format!("req-{i}"),
            url: "/v1/chat/completions".into(),
            body: serde_json::json!({"model": "m"}),
        })
        .collect()
}

fn new_batch() -> NewBatch {
    NewBatch {
        endpoint: "/v1/chat/completions".into(),
        input_file_id: "file-x".into(),
        completion_window: "24h".into(),
        metadata: None,
        owner: None,
        trace: TraceFields::default(),
        expires_in: 24 * 3600,
    }
}

fn ok(line: &Line) -> LineResult {
    LineResult {
        custom_id: line.custom_id.clone(),
        failed: false,
        json: format!("{{\"custom_id\":\"{}\"}}", line.custom_id),
    }
}

#[test]
fn batch_completes_with_an_output_file_in_line_order() {
    let scratch = inferd_testkit::temp_dir("jobs-complete");
    let store = JobStore::open(scratch.path()).expect("open");
    let batch = store.create_batch(new_batch(), lines(3)).expect("create");
    while let Some(line) = store.claim_next().expect("claim") {
        store.finish_line(&line, &ok(&line)).expect("finish");
    }
    let (batch, _) = store.batch(&batch.id).expect("get").expect("exists");
    assert_eq!(batch.status, BatchStatus::Completed);
    assert_eq!(batch.request_counts.completed, 3);
    let output = batch.output_file_id.expect("output file");
    let text =
        String::from_utf8(store.file_content(&output).expect("read").expect("file")).expect("utf8");
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("{\"custom_id\":\"req-0\"}"));
}

#[test]
fn a_second_result_for_a_line_is_ignored() {
    let scratch = inferd_testkit::temp_dir("jobs-once");
    let store = JobStore::open(scratch.path()).expect("open");
    store.create_batch(new_batch(), lines(2)).expect("create");
    let line = store.claim_next().expect("claim").expect("line");
    store.finish_line(&line, &ok(&line)).expect("finish");
    let batch = store
        .finish_line(&line, &ok(&line))
        .expect("again")
        .expect("batch");
    assert_eq!(batch.request_counts.completed, 1);
    assert_eq!(batch.status, BatchStatus::InProgress);
}

#[test]
fn reopening_puts_running_lines_back_in_the_queue() {
    let path = inferd_testkit::temp_dir("jobs-reopen");
    let id = {
        let store = JobStore::open(path.path()).expect("open");
        let batch = store.create_batch(new_batch(), lines(2)).expect("create");
        store.claim_next().expect("claim").expect("line");
        batch.id
    };
    let store = JobStore::open(path.path()).expect("reopen");
    let depth = store.depth().expect("depth");
    assert_eq!((depth.waiting, depth.taken), (2, 0), "{depth:?}");
    let mut seen = Vec::new();
    while let Some(line) = store.claim_next().expect("claim") {
        seen.push((line.custom_id.clone(), line.attempts));
        store.finish_line(&line, &ok(&line)).expect("finish");
    }
    // The line the first process had taken is on its second attempt.
    assert_eq!(seen, [("req-0".into(), 2), ("req-1".into(), 1)]);
    let (batch, _) = store.batch(&id).expect("get").expect("exists");
    assert_eq!(batch.status, BatchStatus::Completed);
}

#[test]
fn cancel_drops_pending_lines_and_waits_for_the_running_one() {
    let scratch = inferd_testkit::temp_dir("jobs-cancel");
    let store = JobStore::open(scratch.path()).expect("open");
    let batch = store.create_batch(new_batch(), lines(5)).expect("create");
    let line = store.claim_next().expect("claim").expect("line");
    let cancelling = store
        .cancel_batch(&batch.id)
        .expect("cancel")
        .expect("batch");
    assert_eq!(cancelling.status, BatchStatus::Cancelling);
    assert!(store.claim_next().expect("claim").is_none());
    let done = store
        .finish_line(&line, &ok(&line))
        .expect("finish")
        .expect("batch");
    assert_eq!(done.status, BatchStatus::Cancelled);
    assert_eq!(done.request_counts.completed, 1);
    assert_eq!(done.request_counts.total, 5);
}

#[test]
fn batches_list_newest_first_with_a_cursor() {
    let scratch = inferd_testkit::temp_dir("jobs-list");
    let store = JobStore::open(scratch.path()).expect("open");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            store
                .create_batch(new_batch(), lines(1))
                .expect("create")
                .id
        })
        .collect();
    let page = store.batches(None, None, 2).expect("list");
    assert_eq!(page.data[0].id, ids[2]);
    assert!(page.has_more);
    let rest = store
        .batches(None, Some(&page.data[1].id), 2)
        .expect("list");
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id, ids[0]);
    assert!(!rest.has_more);
}

#[test]
fn depth_counts_waiting_and_taken_lines_and_dates_the_oldest() {
    let scratch = inferd_testkit::temp_dir("jobs-depth");
    let store = JobStore::open(scratch.path()).expect("open");
    assert_eq!(store.depth().expect("depth"), QueueDepth::default());
    let before = now() * 1000;
    store.create_batch(new_batch(), lines(3)).expect("create");
    let line = store.claim_next().expect("claim").expect("line");
    let depth = store.depth().expect("depth");
    assert_eq!((depth.waiting, depth.taken), (2, 1), "{depth:?}");
    let queued = depth.oldest_queued_ms.expect("oldest");
    assert!(
        queued + 1000 >= before && queued <= (now() + 1) * 1000,
        "{queued} vs {before}"
    );
    store.finish_line(&line, &ok(&line)).expect("finish");
    let depth = store.depth().expect("depth");
    assert_eq!((depth.waiting, depth.taken), (2, 0), "{depth:?}");
    while let Some(line) = store.claim_next().expect("claim") {
        store.finish_line(&line, &ok(&line)).expect("finish");
    }
    assert_eq!(store.depth().expect("depth"), QueueDepth::default());
}

#[test]
fn lines_of_a_batch_past_its_window_are_not_run_and_end_it_expired() {
    let scratch = inferd_testkit::temp_dir("jobs-expired");
    let store = JobStore::open(scratch.path()).expect("open");
    let batch = store
        .create_batch(
            NewBatch {
                expires_in: 0,
                ..new_batch()
            },
            lines(3),
        )
        .expect("create");
    assert!(store.claim_next().expect("claim").is_none());
    let (batch, _) = store.batch(&batch.id).expect("get").expect("exists");
    assert_eq!(batch.status, BatchStatus::Expired);
    assert!(batch.expired_at.is_some());
    assert_eq!(
        (batch.request_counts.completed, batch.request_counts.failed),
        (0, 3)
    );
    assert!(batch.output_file_id.is_none());
    let errors = batch.error_file_id.expect("error file");
    let text =
        String::from_utf8(store.file_content(&errors).expect("read").expect("file")).expect("utf8");
    assert_eq!(text.matches("\"batch_expired\"").count(), 3, "{text}");
    assert_eq!(store.depth().expect("depth"), QueueDepth::default());
}
