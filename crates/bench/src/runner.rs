//! Runs the stages: an open-loop sender for rate stages (a timer per send, a task per request,
//! so a slow server never delays the schedule) and closed-loop workers for concurrency stages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use inferd_otel::OtelSpan;
use tokio::task::JoinSet;

use crate::client::{execute, Outcome, PreparedRequest, Target};
use crate::config::{Load, StageSpec, Stop};
use crate::report::describe_load;
use crate::schedule::ArrivalSchedule;
use crate::trace::{record_outcome, request_span, Tracing};

/// What every request of a run shares.
#[derive(Debug)]
pub struct Runner {
    /// The server.
    pub target: Target,
    /// Request bodies, used in turn.
    pub requests: Vec<PreparedRequest>,
    /// Spans.
    pub tracing: Tracing,
    /// Seed for Poisson arrivals.
    pub seed: u64,
    /// Whether to draw progress bars.
    pub progress: bool,
    /// Requests sent so far (picks the next prompt).
    next_request: AtomicU64,
}

/// One stage's outcomes and how long it took.
#[derive(Debug)]
pub struct StageRun {
    /// One per request sent.
    pub outcomes: Vec<Outcome>,
    /// From the stage's start to its last response.
    pub duration: Duration,
}

/// Live counts for the progress bar.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Runner {
    /// A runner over `requests` (at least one).
    pub fn new(
        target: Target,
        requests: Vec<PreparedRequest>,
        tracing: Tracing,
        seed: u64,
        progress: bool,
    ) -> Runner {
        Runner {
            target,
            requests,
            tracing,
            seed,
            progress,
            next_request: AtomicU64::new(0),
        }
    }

    fn next_request(&self) -> &PreparedRequest {
        let i = self.next_request.fetch_add(1, Ordering::Relaxed);
        let len = self.requests.len().max(1) as u64;
        &self.requests[usize::try_from(i % len).unwrap_or(0)]
    }

    /// Runs one stage; `index` numbers it (its Poisson seed, its span).
    pub async fn run_stage(self: &Arc<Self>, index: usize, spec: &StageSpec) -> StageRun {
        let load = describe_load(&spec.load);
        let span = self.tracing.stage_span(index, &spec.name, &load);
        let counters = Arc::new(Counters::default());
        let bar = self.progress_bar(spec, &load);
        let ticker = tokio::spawn(tick(
            bar.clone(),
            Arc::clone(&counters),
            spec.stop,
            Instant::now(),
        ));
        let start = Instant::now();
        let outcomes = match spec.load {
            Load::Rate { rate, arrival } => {
                let schedule =
                    ArrivalSchedule::new(rate, arrival, self.seed.wrapping_add(index as u64));
                self.open_loop(schedule, spec.stop, &span, &counters, start)
                    .await
            }
            Load::Concurrency { concurrency } => {
                self.closed_loop(concurrency, spec.stop, &span, &counters, start)
                    .await
            }
        };
        let duration = start.elapsed();
        ticker.abort();
        bar.finish_and_clear();
        span.end();
        StageRun { outcomes, duration }
    }

    fn progress_bar(&self, spec: &StageSpec, load: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let (len, unit) = match spec.stop {
            Stop::Requests(n) => (n, "{pos}/{len} req"),
            Stop::Duration(d) => (d.as_secs().max(1), "{pos}/{len} s"),
        };
        // ProgressBar::new draws to stderr and hides itself when stderr is not a terminal.
        let bar = ProgressBar::new(len);
        let template = format!("{{prefix}} [{{bar:30}}] {unit} {{msg}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{} ({load})", spec.name));
        bar
    }

    async fn open_loop(
        self: &Arc<Self>,
        schedule: ArrivalSchedule,
        stop: Stop,
        span: &OtelSpan,
        counters: &Arc<Counters>,
        start: Instant,
    ) -> Vec<Outcome> {
        let mut tasks = JoinSet::new();
        let mut outcomes = Vec::new();
        for (i, offset) in schedule.enumerate() {
            match stop {
                Stop::Requests(n) if i as u64 >= n => break,
                Stop::Duration(d) if offset >= d => break,
                _ => {}
            }
            let due = start + offset;
            tokio::time::sleep_until(due.into()).await;
            while let Some(done) = tasks.try_join_next() {
                outcomes.extend(done.ok());
            }
            let runner = Arc::clone(self);
            let span = span.clone();
            let counters = Arc::clone(counters);
            tasks.spawn(async move { runner.one(due, &span, &counters).await });
        }
        while let Some(done) = tasks.join_next().await {
            outcomes.extend(done.ok());
        }
        outcomes
    }

    async fn closed_loop(
        self: &Arc<Self>,
        concurrency: u32,
        stop: Stop,
        span: &OtelSpan,
        counters: &Arc<Counters>,
        start: Instant,
    ) -> Vec<Outcome> {
        let claimed = Arc::new(AtomicU64::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..concurrency {
            let runner = Arc::clone(self);
            let span = span.clone();
            let counters = Arc::clone(counters);
            let claimed = Arc::clone(&claimed);
            workers.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let more = match stop {
                        Stop::Requests(n) => claimed.fetch_add(1, Ordering::Relaxed) < n,
                        Stop::Duration(d) => start.elapsed() < d,
                    };
                    if !more {
                        break;
                    }
                    // A closed loop sends as soon as a slot frees: it is never late.
                    mine.push(runner.one(Instant::now(), &span, &counters).await);
                }
                mine
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = workers.join_next().await {
            outcomes.extend(done.unwrap_or_default());
        }
        outcomes
    }

    async fn one(&self, due: Instant, stage: &OtelSpan, counters: &Counters) -> Outcome {
        let request = self.next_request();
        let span = request_span(stage, &self.target, request.max_tokens);
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let outcome = execute(&self.target, request, due, &span).await;
        record_outcome(&span, &outcome);
        span.end();
        counters.done.fetch_add(1, Ordering::Relaxed);
        if outcome.error.is_some() {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

async fn tick(bar: ProgressBar, counters: Arc<Counters>, stop: Stop, start: Instant) {
    if bar.is_hidden() {
        return;
    }
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        interval.tick().await;
        let sent = counters.sent.load(Ordering::Relaxed);
        let done = counters.done.load(Ordering::Relaxed);
        let failed = counters.failed.load(Ordering::Relaxed);
        match stop {
            Stop::Requests(_) => bar.set_position(done),
            Stop::Duration(d) => bar.set_position(start.elapsed().min(d).as_secs()),
        }
        bar.set_message(format!(
            "sent {sent}, done {done}, failed {failed}, in flight {}",
            sent - done
        ));
    }
}
