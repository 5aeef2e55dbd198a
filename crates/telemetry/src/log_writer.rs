//! A log line sink that never makes a request wait on the terminal, file or pipe behind it,
//! and costs a request one copy into memory rather than a thread wake-up and a write call.
//!
//! Lines are appended to a shared buffer; a background thread writes what has gathered in one
//! `write` once lines have waited `interval` (or at once when `WAKE_AT` bytes are waiting), and
//! sleeps without a timer while there is nothing to write. Under load that is one wake-up and
//! one write per interval however many lines; an idle server has no wake-ups at all. Nothing is
//! dropped: when `MAX_WAITING` bytes are waiting (the output is stuck), writers wait for the
//! thread to catch up. The guard writes what is left when it is dropped.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Waiting bytes that wake the thread before the interval is over.
const WAKE_AT: usize = 64 * 1024;
/// Waiting bytes at which writers wait for the thread.
const MAX_WAITING: usize = 8 * 1024 * 1024;

/// The default longest time a line waits before it is written.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct State {
    /// Lines waiting to be written.
    waiting: Vec<u8>,
    /// The thread is asleep until a writer wakes it.
    idle: bool,
    /// The guard was dropped: write what is left and stop.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the thread took the waiting lines.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // An append is one call, so a panic elsewhere cannot leave half a line: a poisoned
        // lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes log lines from a background thread in batches; give it to the log layer as its
/// writer. Clones share the same thread.
#[derive(Debug, Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
    thread: Thread,
}

/// Stops the writer thread when dropped, after it wrote every line given so far.
#[derive(Debug)]
pub struct LogFlushGuard {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl BatchedWriter {
    /// Starts the thread `thread_name`, which writes into `out`; a line waits at most about
    /// `interval` before it is written.
    pub fn spawn<W>(
        out: W,
        interval: Duration,
        thread_name: &str,
    ) -> io::Result<(Self, LogFlushGuard)>
    where
        W: Write + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            drained: Condvar::new(),
        });
        let handle = thread::Builder::new().name(thread_name.to_owned()).spawn({
            let shared = Arc::clone(&shared);
            move || run(&shared, out, interval)
        })?;
        let writer = Self {
            shared: Arc::clone(&shared),
            thread: handle.thread().clone(),
        };
        Ok((
            writer,
            LogFlushGuard {
                shared,
                handle: Some(handle),
            },
        ))
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        while state.waiting.len() >= MAX_WAITING && !state.closed {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let before = state.waiting.len();
        state.waiting.extend_from_slice(line);
        let wake = (before == 0 && std::mem::take(&mut state.idle))
            || (before < WAKE_AT && state.waiting.len() >= WAKE_AT);
        drop(state);
        if wake {
            self.thread.unpark();
        }
    }
}

/// The writer thread's loop.
fn run<W: Write>(shared: &Shared, mut out: W, interval: Duration) {
    let mut batch = Vec::new();
    loop {
        // Sleep until there are lines.
        let mut state = shared.lock();
        while state.waiting.is_empty() && !state.closed {
            state.idle = true;
            drop(state);
            thread::park();
            state = shared.lock();
        }
        state.idle = false;
        if state.waiting.is_empty() {
            // Closed, and everything is written.
            return;
        }
        // Let more lines gather, unless enough wait already or the guard was dropped.
        let until = Instant::now() + interval;
        while !state.closed && state.waiting.len() < WAKE_AT {
            let now = Instant::now();
            if now >= until {
                break;
            }
            drop(state);
            thread::park_timeout(until - now);
            state = shared.lock();
        }
        std::mem::swap(&mut state.waiting, &mut batch);
        drop(state);
        shared.drained.notify_all();
        // A broken output (a closed pipe) loses the lines; there is nowhere to report it.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > 4 * WAKE_AT {
            batch.shrink_to(WAKE_AT);
        }
    }
}

impl Drop for LogFlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.drained.notify_all();
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// One line being handed over (the log layer writes each formatted line in one call).
#[derive(Debug)]
pub struct LineSink<'a>(&'a BatchedWriter);

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records each write call, and can be held shut.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().expect("gate");
            self.writes.lock().expect("writes").push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(self.writes.lock().expect("writes").concat()).expect("utf-8")
        }
        fn calls(&self) -> usize {
            self.writes.lock().expect("writes").len()
        }
    }

    /// Hands over one line the way the log layer does: formatted first, then one call.
    fn log(writer: &BatchedWriter, line: &str) {
        writer
            .make_writer()
            .write_all(line.as_bytes())
            .expect("write");
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_in_few_writes() {
        let out = Recorder::default();
        let (writer, guard) =
            BatchedWriter::spawn(out.clone(), Duration::from_millis(50), "test-log")
                .expect("spawn");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..500 {
                        log(&writer, &format!("thread {t} line {i}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        drop(guard);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        for t in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..500).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(own, expected, "thread {t}'s lines whole and in order");
        }
        // 2,000 lines gathered into batches, not one write each.
        assert!(out.calls() < 200, "{} writes", out.calls());
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more_or_for_the_guard() {
        let out = Recorder::default();
        let (writer, _guard) =
            BatchedWriter::spawn(out.clone(), Duration::from_millis(5), "test-log").expect("spawn");
        for round in 0..3 {
            log(&writer, &format!("line {round}\n"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !out.text().contains(&format!("line {round}\n")) {
                assert!(Instant::now() < deadline, "line {round} never written");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn writers_wait_for_a_stuck_output_instead_of_dropping_lines() {
        let out = Recorder::default();
        let held = out.gate.lock().expect("gate");
        let (writer, guard) =
            BatchedWriter::spawn(out.clone(), Duration::from_millis(1), "test-log").expect("spawn");
        let producer = thread::spawn({
            let writer = writer.clone();
            move || {
                // 16 MiB: twice what may wait while the output is stuck.
                let line = format!("{}\n", "x".repeat(1023));
                for _ in 0..16 * 1024 {
                    log(&writer, &line);
                }
            }
        });
        thread::sleep(Duration::from_millis(200));
        assert!(!producer.is_finished(), "the writer should be held back");
        drop(held);
        producer.join().expect("producer");
        drop(guard);
        assert_eq!(out.text().len(), 16 * 1024 * 1024);
    }
}
